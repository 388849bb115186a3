"""The JSON shape of what we answer, and the base of the API's model
serializers. What edge units send is checked in `detections.ingest.body`,
which the MQTT bridge uses too."""

from django.db import models
from rest_framework import serializers

from detections.core.formats import file_url, format_time
from detections.ingest.typed import (
    FormBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    TypedBody,
)
from detections.models import Detection


class ApiModelSerializer(TypedBody, serializers.ModelSerializer):
    """The API's model serializers: a model's fields hold their JSON types
    (`TypedBody`), its booleans as `FormBooleanField`."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: FormBooleanField,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.IntegerField: StrictIntegerField,
        models.BigIntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
        models.PositiveSmallIntegerField: StrictIntegerField,
        models.SmallIntegerField: StrictIntegerField,
        models.FloatField: StrictFloatField,
    }


class DetectionSerializer(ApiModelSerializer):
    """A stored detection as the REST API shows it (image URLs, never base64)."""

    camera = serializers.CharField(source="camera.name")
    time = serializers.SerializerMethodField()
    received_at = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    direction = serializers.SerializerMethodField(help_text="in, out, or null when the unit did not say")

    class Meta:
        model = Detection
        fields = [
            "id",
            "tracking_id",
            "vehicle_type",
            "camera",
            "time",
            "received_at",
            "confidence",
            "bbox",
            "plate",
            "direction",
            "image_url",
            "thumbnail_url",
        ]

    def get_time(self, detection) -> str:
        return format_time(detection.detected_at)

    def get_received_at(self, detection) -> str:
        return format_time(detection.received_at)

    def get_direction(self, detection) -> str | None:
        return detection.direction or None

    def get_image_url(self, detection) -> str | None:
        return file_url(detection.image)

    def get_thumbnail_url(self, detection) -> str | None:
        return file_url(detection.thumbnail)
