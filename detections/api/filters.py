import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from detections.alerts.plates import normalize, plate_like
from detections.core.formats import EARLIEST, LATEST
from detections.models import Detection, VehicleType


class BoundedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def clean(self, value):
        moment = super().clean(value)
        if moment is not None and not EARLIEST <= moment <= LATEST:
            raise forms.ValidationError("Enter a time between the years 1001 and 9998.", code="out_of_range")
        return moment


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField


@extend_schema_field(OpenApiTypes.INT)
class EditsFilter(django_filters.TypedChoiceFilter):
    """A number of edits, 0-2 (an integer in the schema, not a model field's type)."""


class DetectionFilter(django_filters.FilterSet):
    """Filters of GET /api/detections/ (protocol.md, Statistics and history)."""

    camera = django_filters.CharFilter(field_name="camera__name")
    vehicle_type = django_filters.ChoiceFilter(choices=VehicleType.choices)
    since = BoundedIsoDateTimeFilter(field_name="detected_at", lookup_expr="gte")
    until = BoundedIsoDateTimeFilter(field_name="detected_at", lookup_expr="lt")
    tracking_id = django_filters.CharFilter()
    plate = django_filters.CharFilter()
    plate_like = django_filters.CharFilter(
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
