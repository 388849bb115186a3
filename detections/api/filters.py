import django_filters
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from detections.alerts.plates import normalize, plate_like
from detections.api.queries import NoBlankValues, clamped
from detections.models import Detection, VehicleType


class ClampedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def clean(self, value):
        return clamped(super().clean(value))


class TimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time bound (UTC without an offset), clamped to the times the database holds."""

    field_class = ClampedIsoDateTimeField


class ApiFilterSet(django_filters.FilterSet):
    """A filter set whose filters, given, must hold a value (`?until=` is a 400)."""

    def get_form_class(self):
        form = super().get_form_class()
        return type(form.__name__, (NoBlankValues, form), {})


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": 2})
class EditsFilter(django_filters.TypedChoiceFilter):
    """A number of edits, 0-2 (an integer in the schema, not a model field's type)."""


@extend_schema_field(
    {
        "type": "string",
        # Something besides the separators a normal form drops, and no NUL.
        "pattern": "^[^\\x00]*[^\\s.\\x00-][^\\x00]*$",
    }
)
class PlateLikeFilter(django_filters.CharFilter):
    pass


class DetectionFilter(ApiFilterSet):
    """Filters of GET /api/detections/ (protocol.md, Statistics and history)."""

    camera = django_filters.CharFilter(field_name="camera__name")
    vehicle_type = django_filters.ChoiceFilter(choices=VehicleType.choices)
    since = TimeFilter(field_name="detected_at", lookup_expr="gte")
    until = TimeFilter(field_name="detected_at", lookup_expr="lt")
    tracking_id = django_filters.CharFilter()
    plate = django_filters.CharFilter()
    plate_like = PlateLikeFilter(
        method="filter_plate_like",
        help_text="plates within max_edits edits of this one, compared in their normal form "
        "(upper case, no spaces, dashes or dots, O/Q->0, I->1, Z->2, S->5, B->8)",
    )
    # Read by filter_plate_like; on its own it filters nothing.
    max_edits = EditsFilter(
        choices=[(n, str(n)) for n in range(3)], coerce=int, method="keep", help_text="0-2, default 1"
    )

    class Meta:
        model = Detection
        fields = ["camera", "vehicle_type", "since", "until", "tracking_id", "plate", "plate_like", "max_edits"]

    def filter_plate_like(self, queryset, name, value):
        if not normalize(value):
            raise ValidationError({"plate_like": ["Give a plate with at least one letter or digit."]})
        max_edits = self.form.cleaned_data.get("max_edits")
        return plate_like(queryset, value, 1 if max_edits in (None, "") else max_edits)

    def keep(self, queryset, name, value):
        return queryset
