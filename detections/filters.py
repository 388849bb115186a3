import django_filters

from .models import Detection, VehicleType


class DetectionFilter(django_filters.FilterSet):
    """Filters of GET /api/detections/ (protocol.md, Statistics and history)."""

    camera = django_filters.CharFilter(field_name="camera__name")
    vehicle_type = django_filters.ChoiceFilter(choices=VehicleType.choices)
    since = django_filters.IsoDateTimeFilter(field_name="detected_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="detected_at", lookup_expr="lt")
    tracking_id = django_filters.CharFilter()
    plate = django_filters.CharFilter()

    class Meta:
        model = Detection
        fields = ["camera", "vehicle_type", "since", "until", "tracking_id", "plate"]
