"""The JSON shape of what we answer, and the base of the API's model
serializers. What edge units send is checked in `detections.ingest.body`,
which the MQTT bridge uses too."""

from django.db import models
from rest_framework import serializers

from detections.core import writes
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


class DetectionCorrectionSerializer(TypedBody, serializers.Serializer):
    """The body of PATCH /api/detections/{id}/: a read's plate, as staff correct it."""

    plate = StrictCharField(
        max_length=writes.PLATE_MAX_LENGTH,
        allow_blank=True,
        help_text="the plate the snapshot shows; empty when it shows none",
    )

    def to_internal_value(self, data):
        if not hasattr(data, "keys"):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]}, code="invalid")
        # A read is what a camera saw: its plate is the one thing staff correct.
        unknown = sorted(set(data.keys()) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {unknown[0]: [f"{unknown[0]} cannot be changed; only plate can be corrected."]}, code="read_only"
            )
        return super().to_internal_value(data)

    def validate_plate(self, value):
        try:
            return writes.checked_plate(value)
        except writes.InvalidPlate as problem:
            raise serializers.ValidationError(str(problem), code="invalid") from None


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
