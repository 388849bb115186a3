"""Validation of what edge units send, and the JSON shape of what we answer.

No side effects here: the ingest serializer turns a request body into a
`writes.NewDetection`, nothing more.
"""

from contextvars import ContextVar
from datetime import UTC, timedelta

from django.conf import settings
from django.db import models
from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from detections.core import images, writes
from detections.core.formats import file_url, format_time
from detections.models import Detection, Direction, VehicleType

VEHICLE_TYPES = [choice.value for choice in VehicleType]

# Legacy units send `id` and `vehicle_img`; the aliases read better in new code.
FIELD_ALIASES = {"tracking_id": "id", "image": "vehicle_img"}


# Whether the body being validated is a form (multipart or urlencoded), whose
# values are all text, rather than JSON, whose values have the types the
# schema gives them. Set by `TypedBody` for the fields under it.
_form_body: ContextVar[bool] = ContextVar("form_body", default=False)


def in_form_body() -> bool:
    """Whether the field being validated is a form's (text) rather than JSON's."""
    return _form_body.get()


class TypedBody:
    """A serializer whose fields hold JSON values to the types the schema
    gives them (DRF alone takes "7" or 7.0 for an integer, false for a number,
    0 for a boolean), while a form's text is still read as before."""

    def to_internal_value(self, data):
        token = _form_body.set(hasattr(data, "getlist"))
        try:
            return super().to_internal_value(data)
        finally:
            _form_body.reset(token)


class StrictCharField(serializers.CharField):
    """Text: DRF's CharField would take 7 for "7"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if not in_form_body() and (isinstance(data, bool) or not isinstance(data, int)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if not in_form_body() and (isinstance(data, bool) or not isinstance(data, (int, float))):
            self.fail("invalid")
        return super().to_internal_value(data)


class FormBooleanField(serializers.BooleanField):
    """A boolean: true or false in JSON; in a form, which a form or multipart
    body may leave out as a JSON one may, its default then applying. DRF reads
    an absent field of a form as an unticked checkbox, false, which would make
    every list, rule or webhook created from a form inactive."""

    default_empty_html = empty

    def to_internal_value(self, data):
        if not in_form_body() and not isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


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


def any_case_pattern(words) -> str:
    """A pattern (ECMA 262, which has no flag for it) matching any of `words` in any letter case."""
    spelled = ("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word) for word in words)
    return f"^({'|'.join(spelled)})$"


@extend_schema_field(
    {
        "type": "string",
        "pattern": any_case_pattern(VEHICLE_TYPES),
        "description": "one of " + ", ".join(VEHICLE_TYPES) + ", in any letter case",
    }
)
class VehicleTypeField(serializers.CharField):
    default_error_messages = {
        "invalid_choice": "'{input}' is not a vehicle type; accepted: " + ", ".join(VEHICLE_TYPES) + "."
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data).lower()
        if value not in VEHICLE_TYPES:
            self.fail("invalid_choice", input=data)
        return value


@extend_schema_field({"type": "string", "description": "base64 of a JPEG, PNG or WebP (optionally a data: URI)"})
class SnapshotField(serializers.Field):
    """Base64 text (optionally a data: URI) or an uploaded file -> VerifiedImage."""

    default_error_messages = {"invalid": "vehicle_img must be base64 text or an uploaded image file."}

    def to_internal_value(self, data):
        if not isinstance(data, str) and not hasattr(data, "read"):
            self.fail("invalid")
        try:
            raw, claimed = _snapshot_bytes(data)
            return images.verify(raw, claimed_media_type=claimed)
        except images.ImageRejected as rejected:
            # The code "image_too_large" makes the answer a 413 (api/errors.py).
            raise serializers.ValidationError(rejected.detail, code=rejected.code) from None


def _snapshot_bytes(data) -> tuple[bytes, str | None]:
    """The snapshot's bytes and the media type a data: URI claimed: from base64
    text, or from a multipart file part, read from its start each time."""
    if isinstance(data, str):
        return images.decode_base64(data)
    data.seek(0)
    return data.read(settings.MAX_IMAGE_BYTES + 1), None


class DetectionTimeField(serializers.DateTimeField):
    """ISO 8601; a time without an offset is UTC; a broken camera clock is refused."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        moment = super().to_internal_value(value)
        latest = timezone.now() + timedelta(seconds=settings.DETECTION_TIME_MAX_FUTURE_SECONDS)
        if moment.year < settings.DETECTION_TIME_MIN_YEAR or moment > latest:
            raise serializers.ValidationError(
                f"time {value} is out of range (from {settings.DETECTION_TIME_MIN_YEAR} "
                "to a day ahead of the server clock); is the camera clock set?",
                code="time_out_of_range",
            )
        return moment


class BBoxField(serializers.ListField):
    child = StrictFloatField(min_value=0, max_value=1_000_000)

    def __init__(self, **kwargs):
        super().__init__(min_length=4, max_length=4, **kwargs)


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "minLength": 1, "maxLength": 100}, {"type": "number"}],
        "description": "the edge tracker's id (a number is stored as its text)",
    }
)
class TrackingIdField(serializers.CharField):
    """Text, or a number stored as its text (trackers that count send 42)."""


class DetectionIngestSerializer(TypedBody, serializers.Serializer):
    """The body of POST /api/detect and POST /api/detections/ (protocol.md, Ingest)."""

    id = TrackingIdField(max_length=100)
    vehicle_type = VehicleTypeField(max_length=32)
    vehicle_img = SnapshotField(required=False, allow_null=True)
    time = DetectionTimeField()
    camera = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    confidence = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    bbox = BBoxField(required=False, allow_null=True)
    plate = StrictCharField(max_length=32, required=False, allow_blank=True, default="")
    direction = serializers.ChoiceField(
        choices=Direction.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="which way the vehicle went, when the unit knows: in or out",
    )

    def to_internal_value(self, data):
        if not hasattr(data, "get"):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]}, code="invalid")
        return super().to_internal_value(_resolve_aliases(data))

    def validate_id(self, value):
        return _printable(value, "id")

    def validate_camera(self, value):
        return _printable(value, "camera")

    def validate_plate(self, value):
        return _printable(value, "plate")

    @property
    def requested_camera(self) -> str:
        """The camera the body names ("" when it names none)."""
        return self.validated_data["camera"]

    def validate_another(self, body) -> dict:
        """The validated data of one more body, checked with this instance's fields.

        For a batch: a serializer per body deep-copies every field each time, a
        large part of checking a small detection. A body that fails is checked
        again by a serializer of its own, so its error is worded exactly as
        `is_valid` words it for a single POST.
        """
        try:
            return self.run_validation(body)
        except serializers.ValidationError:
            alone = DetectionIngestSerializer(data=body)
            alone.is_valid(raise_exception=True)
            return alone.validated_data

    def new_detection(self, camera, data: dict | None = None, *, idempotency_key: str = "") -> writes.NewDetection:
        """The validated body (or `data` from `validate_another`) as a detection to store."""
        data = self.validated_data if data is None else data
        return writes.NewDetection(
            camera=camera,
            tracking_id=data["id"],
            vehicle_type=data["vehicle_type"],
            detected_at=data["time"],
            image=data.get("vehicle_img"),
            confidence=data.get("confidence"),
            bbox=data.get("bbox"),
            plate=data["plate"],
            direction=data.get("direction", ""),
            idempotency_key=idempotency_key,
        )


def _resolve_aliases(data):
    """A copy of the body with aliases renamed; a form body stays a QueryDict, so
    that list fields sent as repeated form fields (bbox=1&bbox=2...) still parse."""
    if hasattr(data, "getlist"):
        resolved = QueryDict(mutable=True)
        for key in data:
            resolved.setlist(key, data.getlist(key))
        take = resolved.pop
        put = resolved.setlist
    else:
        resolved = {key: data[key] for key in data}
        take = resolved.pop
        put = resolved.__setitem__
    for alias, name in FIELD_ALIASES.items():
        if alias in resolved:
            value = take(alias)
            if name in resolved and resolved[name] != (value[-1] if hasattr(data, "getlist") else value):
                raise serializers.ValidationError(
                    {alias: [f"{alias} and {name} are the same field; send one of them."]}, code="conflict"
                )
            put(name, value)
    return resolved


def _printable(value: str, name: str) -> str:
    if not value.isprintable():
        raise serializers.ValidationError(f"{name} must not contain control characters.", code="invalid")
    return value


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
