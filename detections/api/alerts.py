"""/api/alerts/: the alerts raised, newest first, and acknowledging them
(protocol.md, "Watch-lists and alerts"): for users with the 'view alert'
permission only, whatever PUBLIC_FEED says."""

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from detections.alerts import acknowledgements
from detections.api.alert_serializers import AlertSerializer
from detections.api.filters import ApiFilterSet, TimeFilter
from detections.api.pagination import DetectionCursorPagination
from detections.api.permissions import CanViewAlerts
from detections.api.watchlists import OptionalSlashRouter
from detections.models import Alert, Detection

# Ids are the database's BIGINT: a larger number is a 400, never a query.
RULE_ID_MAX = 2**63 - 1


class AlertPages(DetectionCursorPagination):
    """Newest raised first, on the (created_at, id) index; the cursor checks of the detections' list."""

    ordering = ("-created_at", "-id")


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": RULE_ID_MAX, "description": "a rule's id"})
class RuleIdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class AlertFilter(ApiFilterSet):
    since = TimeFilter(field_name="created_at", lookup_expr="gte", help_text="raised at or after")
    until = TimeFilter(field_name="created_at", lookup_expr="lt", help_text="raised before")
    rule = RuleIdFilter(field_name="rule_id", min_value=1, max_value=RULE_ID_MAX)
    camera = django_filters.CharFilter(help_text="the camera of the alert's detection")
    acknowledged = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_acknowledged"
    )

    class Meta:
        model = Alert
        fields = ["since", "until", "rule", "camera", "acknowledged"]

    def filter_acknowledged(self, queryset, name, value):
        return queryset.filter(acknowledged_at__isnull=value == "false")


def existing_detection_ids(alerts) -> set[int]:
    """Which of the alerts' detections are still stored: one query for them all."""
    return set(Detection.objects.filter(pk__in={alert.detection_id for alert in alerts}).values_list("pk", flat=True))


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """/api/alerts/: read-only, but for acknowledging."""

    queryset = Alert.objects.select_related("acknowledged_by")
    serializer_class = AlertSerializer
    permission_classes = [CanViewAlerts]
    pagination_class = AlertPages
    filterset_class = AlertFilter
    lookup_value_regex = "[0-9]+"

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True, context=self.context_for(page)).data)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.shown(self.get_object()))

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk):
        """Record who acknowledged the alert, and when; acknowledging again changes nothing."""
        alert = self.get_object()
        acknowledgements.acknowledge(Alert.objects.filter(pk=alert.pk), request.user)
        return Response(self.shown(self.get_object()))

    def context_for(self, alerts) -> dict:
        return {**self.get_serializer_context(), "existing_detection_ids": existing_detection_ids(alerts)}

    def shown(self, alert) -> dict:
        return self.get_serializer(alert, context=self.context_for([alert])).data


router = OptionalSlashRouter()
router.register("alerts", AlertViewSet, basename="alert")

urlpatterns = router.urls
