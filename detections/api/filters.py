from datetime import UTC, datetime

import django_filters
from django import forms

from detections.models import Detection, VehicleType

# Times the database can hold whatever the offset they came with (MySQL's
# DATETIME spans the years 1000 to 9999; converting 9999-12-31T23:59-01:00 to
# UTC would overflow).
EARLIEST = datetime(1001, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


class BoundedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def clean(self, value):
        moment = super().clean(value)
        if moment is not None and not EARLIEST <= moment <= LATEST:
            raise forms.ValidationError("Enter a time between the years 1001 and 9998.", code="out_of_range")
        return moment


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField


class DetectionFilter(django_filters.FilterSet):
    """Filters of GET /api/detections/ (protocol.md, Statistics and history)."""

    camera = django_filters.CharFilter(field_name="camera__name")
    vehicle_type = django_filters.ChoiceFilter(choices=VehicleType.choices)
    since = BoundedIsoDateTimeFilter(field_name="detected_at", lookup_expr="gte")
    until = BoundedIsoDateTimeFilter(field_name="detected_at", lookup_expr="lt")
    tracking_id = django_filters.CharFilter()
    plate = django_filters.CharFilter()

    class Meta:
        model = Detection
        fields = ["camera", "vehicle_type", "since", "until", "tracking_id", "plate"]
