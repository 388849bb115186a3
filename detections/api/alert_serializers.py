"""The JSON of watch-lists, their plates, alert rules and alerts (protocol.md,
"Watch-lists and alerts"). What a plate, an expiry or a rule's condition may
be is checked in `detections.alerts` (the admin checks the same); these wrap it
in the API's 400s."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from detections.alerts import conditions, entries
from detections.api.serializers import ApiModelSerializer
from detections.core.formats import format_time
from detections.ingest.body import VEHICLE_TYPES
from detections.ingest.typed import StrictCharField, StrictFloatField, any_case_pattern
from detections.models import Alert, AlertRule, Watchlist, WatchlistEntry


def _checked(check, value):
    """check(value), its ValueError a 400 of the field being validated."""
    try:
        return check(value)
    except ValueError as problem:
        raise serializers.ValidationError(str(problem), code="invalid") from None


@extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
class UtcTimeField(serializers.Field):
    """Written as every time of the API is (`format_time`)."""

    def to_representation(self, value):
        return format_time(value)


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            {"type": "string", "maxLength": 0},
        ],
        "nullable": True,
        "description": "ISO 8601, UTC without an offset; a date is its midnight UTC; empty or null: never; "
        "the years 1001 to 9998 (a 400 otherwise)",
    }
)
class ExpiryField(UtcTimeField):
    """Read as an entry's expiry is everywhere (`entries.parse_expiry`)."""

    default_error_messages = {"invalid": "expected an ISO 8601 time as text."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return _checked(entries.parse_expiry, data)


# What the schema cannot say about a name, said in its description.
NAME_HELP = "printable text, not only spaces (a 400 otherwise); unique: the name of another {what} is a 409 `unique`"


def _checked_name(value: str) -> str:
    value = value.strip()
    if not value or not value.isprintable():
        raise serializers.ValidationError("name must be printable text.", code="invalid")
    return value


class WatchlistSerializer(ApiModelSerializer):
    plate_count = serializers.SerializerMethodField(help_text="entries on the list, expired ones included")
    created_at = UtcTimeField(read_only=True)
    updated_at = UtcTimeField(read_only=True)

    class Meta:
        model = Watchlist
        fields = ["id", "name", "match", "max_edits", "active", "plate_count", "created_at", "updated_at"]
        extra_kwargs = {"name": {"help_text": NAME_HELP.format(what="list")}}

    def validate_name(self, value):
        return _checked_name(value)

    def get_plate_count(self, watchlist) -> int:
        # Annotated on lists (one query for the page); counted for a single list.
        annotated = getattr(watchlist, "plate_count", None)
        return annotated if annotated is not None else watchlist.entries.count()


class WatchlistEntrySerializer(ApiModelSerializer):
    """One plate of a list. `plate_normalized` is what matching compares."""

    plate = StrictCharField(
        max_length=entries.PLATE_MAX_LENGTH,
        help_text="as staff typed it: printable, with a letter or a digit (a 400 otherwise); "
        "the same normalised plate as another entry of the list is a 409",
    )
    note = StrictCharField(
        max_length=entries.NOTE_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="one line of printable text",
    )
    expires_at = ExpiryField(
        required=False, allow_null=True, default=None, help_text="never matches from this time on; null: never expires"
    )
    created_at = UtcTimeField(read_only=True)

    class Meta:
        model = WatchlistEntry
        fields = ["id", "plate", "plate_normalized", "note", "expires_at", "created_at"]
        read_only_fields = ["plate_normalized"]

    def validate_plate(self, value):
        return _checked(entries.checked_plate, value)

    def validate_note(self, value):
        return _checked(entries.checked_note, value)


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "additionalProperties": False,
        "required": ["days", "from", "to"],
        "properties": {
            "days": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}, "minItems": 1},
            "from": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
            "to": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
            "tz": {"type": "string", "default": "UTC"},
        },
        "description": "days 0 = Monday; `from` and `to` must differ (a 400 otherwise; leave the schedule "
        "out to watch at every hour), and a window whose `to` is earlier than its `from` passes midnight "
        "and belongs to the day it starts; times in `tz`, an IANA time zone name (another name is a 400)",
    }
)
class ScheduleField(serializers.JSONField):
    def to_internal_value(self, data):
        return _checked(conditions.checked_schedule, super().to_internal_value(data))


@extend_schema_field({"type": "string", "pattern": any_case_pattern(VEHICLE_TYPES)})
class VehicleTypeName(StrictCharField):
    """A vehicle type in any letter case, checked with the rule's other
    conditions (`conditions.checked_vehicle_types`)."""


class AlertRuleSerializer(ApiModelSerializer):
    watchlist = serializers.PrimaryKeyRelatedField(
        queryset=Watchlist.objects.all(), allow_null=True, required=False, help_text="absent: every detection"
    )
    cameras = serializers.ListField(
        child=StrictCharField(max_length=conditions.CAMERA_NAME_MAX_LENGTH),
        required=False,
        help_text="camera names; empty: every camera",
    )
    vehicle_types = serializers.ListField(
        child=VehicleTypeName(max_length=32),
        required=False,
        help_text="any of " + ", ".join(VEHICLE_TYPES) + "; empty: every type",
    )
    min_confidence = StrictFloatField(min_value=0, max_value=1, required=False, allow_null=True)
    schedule = ScheduleField(required=False, allow_null=True)
    created_at = UtcTimeField(read_only=True)
    updated_at = UtcTimeField(read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "name",
            "watchlist",
            "cameras",
            "vehicle_types",
            "min_confidence",
            "schedule",
            "cooldown_seconds",
            "active",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"name": {"help_text": NAME_HELP.format(what="rule")}}

    def validate_name(self, value):
        return _checked_name(value)

    def validate_cameras(self, value):
        return _checked(conditions.checked_cameras, value)

    def validate_vehicle_types(self, value):
        return _checked(conditions.checked_vehicle_types, value)


class AlertSerializer(ApiModelSerializer):
    """An alert as stored. The view passes `existing_detection_ids` (one query
    a page) so that `detection` says `"deleted": true` once its detection is gone."""

    rule = serializers.IntegerField(source="rule_id", allow_null=True, help_text="null once the rule is deleted")
    watchlist = serializers.IntegerField(
        source="watchlist_id", allow_null=True, help_text="null for a rule without a list, or once it is deleted"
    )
    detection = serializers.SerializerMethodField()
    created_at = UtcTimeField(read_only=True)
    acknowledged_at = UtcTimeField(read_only=True)
    acknowledged_by = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "seq",
            "rule",
            "watchlist",
            "entry_id",
            "matched_plate",
            "distance",
            "detection",
            "created_at",
            "acknowledged_at",
            "acknowledged_by",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "additionalProperties": True,
            "description": "the detection's new_detection fields when the alert was raised, "
            'plus "deleted": true once it is deleted',
        }
    )
    def get_detection(self, alert) -> dict:
        if alert.detection_id in self.context["existing_detection_ids"]:
            return alert.detection
        return {**alert.detection, "deleted": True}

    def get_acknowledged_by(self, alert) -> str | None:
        """The username of who acknowledged it (null when not acknowledged, or the user is gone)."""
        return alert.acknowledged_by.get_username() if alert.acknowledged_by else None
