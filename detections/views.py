"""Thin views: validate, call `ingest` or `stats`, serialise."""

import zoneinfo

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from . import counters, ingest, stats
from .errors import error_response, validation_body
from .filters import DetectionFilter
from .models import Detection, VehicleType
from .serializers import DetectionIngestSerializer, DetectionSerializer, DetectionTimeField


MAX_IDEMPOTENCY_KEY_LENGTH = 255


def ingest_response(request) -> Response:
    """POST a detection (either path): 201 when stored, 200 when it already was."""
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        return error_response(
            400, "invalid_idempotency_key", f"Idempotency-Key must be printable and at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters."
        )
    body = DetectionIngestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        result = ingest.detection_create(**body.ingest_arguments(), idempotency_key=key)
    except ingest.IdempotencyConflict as conflict:
        return error_response(422, "idempotency_key_reused", str(conflict))
    return Response(
        DetectionSerializer(result.detection).data,
        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
    )


class BatchSerializer(serializers.Serializer):
    detections = serializers.ListField(child=serializers.JSONField(), allow_empty=False)

    def validate_detections(self, items):
        if len(items) > settings.BATCH_MAX_ITEMS:
            raise serializers.ValidationError(
                f"{len(items)} detections in one batch; the most is {settings.BATCH_MAX_ITEMS}.",
                code="batch_too_large",
            )
        return items


def batch_item_result(index: int, item: dict) -> dict:
    """Ingest one item of a batch and say what became of it."""
    body = DetectionIngestSerializer(data=item)
    if not body.is_valid():
        return {"index": index, "status": "error", **validation_body(body.errors)}
    result = ingest.detection_create(**body.ingest_arguments())
    return {"index": index, "status": "created" if result.created else "duplicate", "id": result.detection.pk}


class DetectionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """/api/detections/: list (filtered, cursor-paginated), retrieve, create, destroy."""

    queryset = Detection.objects.select_related("camera")
    serializer_class = DetectionSerializer
    filterset_class = DetectionFilter

    def create(self, request, *args, **kwargs):
        return ingest_response(request)

    def perform_destroy(self, instance):
        ingest.detection_delete(detection=instance)

    @action(detail=False, methods=["post"], url_path="batch")
    def batch(self, request):
        """POST /api/detections/batch/: many detections, an answer for each.

        Items are independent: good ones are stored even when others are bad,
        and a retried batch stores nothing twice.
        """
        envelope = BatchSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        results = [batch_item_result(index, item) for index, item in enumerate(envelope.validated_data["detections"])]
        summary = {state: sum(r["status"] == state for r in results) for state in ("created", "duplicate", "error")}
        return Response({**summary, "results": results})


class LegacyDetectView(APIView):
    """POST /api/detect: the path units in the field use."""

    def post(self, request):
        return ingest_response(request)


class LegacyDeleteView(APIView):
    """DELETE /api/delete/{id}: 200 with the new count, as the legacy service answered."""

    def delete(self, request, pk: int):
        detection = get_object_or_404(Detection.objects.select_related("camera"), pk=pk)
        new_count = ingest.detection_delete(detection=detection)
        return Response({"message": f"Detection {pk} deleted.", "new_count": new_count})


class StatsQuerySerializer(serializers.Serializer):
    since = DetectionTimeField(required=False)
    until = DetectionTimeField(required=False)
    camera = serializers.CharField(required=False, max_length=100)
    vehicle_type = serializers.ChoiceField(choices=VehicleType.values, required=False)
    bucket = serializers.ChoiceField(choices=stats.BUCKETS, default="hour")
    tz = serializers.CharField(required=False, default="UTC", max_length=64)
    recent = serializers.IntegerField(required=False, default=20, min_value=0, max_value=100)

    def validate_tz(self, value):
        try:
            return zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise serializers.ValidationError(f"'{value}' is not an IANA time zone name.", code="invalid")

    def validate(self, data):
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise serializers.ValidationError({"since": ["since must be before until."]}, code="invalid")
        return data

    def to_query(self) -> stats.StatsQuery:
        data = dict(self.validated_data)
        data["time_zone"] = data.pop("tz")
        return stats.StatsQuery(**data)


class StatsView(APIView):
    """GET /api/stats: legacy total_vehicles and recent_logs, plus breakdowns and a series."""

    def get(self, request):
        params = StatsQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.to_query()
        try:
            series = stats.series(query, now=timezone.now())
        except ValueError as problem:
            raise serializers.ValidationError({"since": [str(problem)]}, code="window_too_large") from None
        by_type, by_camera = stats.breakdowns(query)
        return Response(
            {
                "total_vehicles": counters.current_position().count,
                "recent_logs": DetectionSerializer(stats.recent_logs(query), many=True).data,
                "by_vehicle_type": by_type,
                "by_camera": by_camera,
                "series": series,
            }
        )


def healthz(request):
    """The process is up and serving (no dependency is checked here)."""
    return JsonResponse({"status": "ok"})
