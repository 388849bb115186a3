"""Thin views: authenticate, validate, call `writes` (or the group commit) or `stats`, serialise."""

import mimetypes
import zoneinfo

from adrf import viewsets as async_viewsets
from adrf.views import APIView as AsyncAPIView
from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.static import serve
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from detections.api.authentication import camera_for_device
from detections.api.errors import error_response
from detections.api.filters import DetectionFilter
from detections.api.permissions import CanCorrect, CanDelete, CanView, IsDevice
from detections.api.queries import QuerySerializer, QueryTimeField
from detections.api.schema import ERROR_BODY
from detections.api.serializers import DetectionCorrectionSerializer, DetectionSerializer
from detections.core import counters, stats, storage, writes
from detections.core.group_commit import group_commit
from detections.ingest.body import DetectionIngestSerializer
from detections.ingest.errors import validation_body
from detections.models import Detection, VehicleType
from detections.operations import metrics

MAX_IDEMPOTENCY_KEY_LENGTH = 255

INGEST_RESPONSES = {
    201: DetectionSerializer,
    200: OpenApiResponse(DetectionSerializer, description="The same detection was stored before"),
    422: OpenApiResponse(ERROR_BODY, description="The Idempotency-Key was used with another detection"),
}
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Any string up to 255 characters; the same key again answers with the same detection.",
)


# One instance of each for single POSTs: a serializer builds its fields anew on
# every instantiation (a deep copy, and the model's introspection for a
# ModelSerializer), a large part of answering one detection.
_ingest_checker = DetectionIngestSerializer()
_stored_detection = DetectionSerializer()
_json = JSONRenderer()


async def ingest_response(request) -> Response:
    """POST a detection (either path): 201 when stored, 200 when it already was.

    Runs on the server's event loop, and waits for the group commit without
    holding a request thread.
    """
    with metrics.INGEST_LATENCY.time():
        key = request.headers.get("Idempotency-Key", "")
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
            return error_response(
                400,
                "invalid_idempotency_key",
                f"Idempotency-Key must be printable and at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
            )
        data = _ingest_checker.validate_another(request.data)
        camera = camera_for_device(request.user, data["camera"])
        outcome = await group_commit.create(_ingest_checker.new_detection(camera, data, idempotency_key=key))
    if isinstance(outcome, writes.IdempotencyConflict):
        return error_response(422, "idempotency_key_reused", str(outcome))
    # Rendered here, on the loop: Django renders a DRF Response in a thread hop of its own.
    return HttpResponse(
        _json.render(_stored_detection.to_representation(outcome.detection)),
        status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
        content_type="application/json",
    )


@extend_schema_field(
    {
        # Any value: an item that is no detection is an error of its own result, not of the batch.
        "anyOf": [{"$ref": "#/components/schemas/DetectionIngestRequest"}, {}],
        "description": "a detection as POST /api/detections/ takes it; an item that is not one "
        "is reported as an error in its result, and the others are stored",
    }
)
class BatchItemField(serializers.JSONField):
    pass


class BatchSerializer(serializers.Serializer):
    detections = serializers.ListField(
        child=BatchItemField(allow_null=True),  # null too: an error of its own result
        allow_empty=False,
        min_length=1,  # for the schema; an empty list is refused as "empty" first
        help_text="at most BATCH_MAX_ITEMS (500) items; more is a 413",
    )

    def validate_detections(self, items):
        if len(items) > settings.BATCH_MAX_ITEMS:
            raise serializers.ValidationError(
                f"{len(items)} detections in one batch; the most is {settings.BATCH_MAX_ITEMS}.",
                code="batch_too_large",
            )
        return items


BATCH_RESULT = inline_serializer(
    "BatchResult",
    {
        "created": serializers.IntegerField(),
        "duplicate": serializers.IntegerField(),
        "error": serializers.IntegerField(),
        "results": inline_serializer(
            "BatchItemResult",
            {
                "index": serializers.IntegerField(),
                "status": serializers.ChoiceField(["created", "duplicate", "error"]),
                "id": serializers.IntegerField(required=False),
                "error": serializers.CharField(required=False),
                "detail": serializers.CharField(required=False),
                "field": serializers.CharField(required=False),
            },
            many=True,
        ),
    },
)


def batch_results(device, items: list) -> list[dict]:
    """What became of each item of a batch: the invalid ones are errors, the
    valid ones are stored together (`writes.detections_create`)."""
    checker = DetectionIngestSerializer()
    results: list[dict | None] = []
    valid: dict[int, dict] = {}  # index -> ingest arguments
    for index, item in enumerate(items):
        try:
            data = checker.validate_another(item)
            valid[index] = checker.new_detection(camera_for_device(device, data["camera"]), data)
            results.append(None)
        except exceptions.ValidationError as invalid:
            results.append({"index": index, "status": "error", **validation_body(invalid.detail)})
        except exceptions.PermissionDenied as denied:
            results.append(
                {
                    "index": index,
                    "status": "error",
                    "error": denied.default_code,
                    "detail": str(denied.detail),
                    "field": "camera",
                }
            )
    for index, stored in zip(valid, writes.detections_create(list(valid.values())), strict=True):
        results[index] = {
            "index": index,
            "status": "created" if stored.created else "duplicate",
            "id": stored.detection.pk,
        }
    return results


class DetectionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    async_viewsets.GenericViewSet,
):
    """/api/detections/: list (filtered, cursor-paginated), retrieve, create,
    correct the plate (PATCH), destroy.

    An async DRF viewset (adrf): `create` runs on the event loop and awaits the
    group commit; the other actions are sync and run on the request threads.
    """

    # prefetch, not select_related: see stats.recent_logs (no join, no filesort).
    queryset = Detection.objects.prefetch_related("camera")
    serializer_class = DetectionSerializer
    filterset_class = DetectionFilter

    def get_permissions(self):
        if self.action in ("create", "batch"):
            return [IsDevice()]
        if self.action == "destroy":
            return [CanDelete()]
        if self.action == "partial_update":
            return [CanCorrect()]
        if self.action is None:
            return []  # a method no route takes (PUT): 405 for everyone
        return [CanView()]

    @extend_schema(request=DetectionIngestSerializer, responses=INGEST_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    async def create(self, request, *args, **kwargs):
        return await ingest_response(request)

    @extend_schema(
        request=DetectionCorrectionSerializer,
        responses={200: DetectionSerializer, **{code: ERROR_BODY for code in (400, 401, 403, 404, 415, 503)}},
    )
    def partial_update(self, request, *args, **kwargs):
        """Correct a read's plate: visits and journeys are derived again, the alert
        rules run for the new plate (never again for the old), and the feed and
        webhooks carry `detection_updated`. The same plate again changes nothing."""
        detection = self.get_object()
        body = DetectionCorrectionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            corrected = writes.detection_correct(detection_id=detection.pk, plate=body.validated_data["plate"])
        except Detection.DoesNotExist:
            raise Http404("No such detection.") from None  # deleted meanwhile
        return Response(DetectionSerializer(corrected.detection).data)

    def perform_destroy(self, instance):
        writes.detection_delete(detection=instance)

    @extend_schema(
        # JSON only: a form cannot carry a list of objects.
        request={"application/json": BatchSerializer},
        responses={200: BATCH_RESULT},
    )
    @action(detail=False, methods=["post"], url_path="batch")
    def batch(self, request):
        """POST /api/detections/batch/: many detections, an answer for each.

        Items are independent: good ones are stored even when others are bad,
        and a retried batch stores nothing twice.
        """
        envelope = BatchSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        items = envelope.validated_data["detections"]
        results = batch_results(request.user, items)
        summary = {state: sum(r["status"] == state for r in results) for state in ("created", "duplicate", "error")}
        return Response({**summary, "results": results})


class LegacyDetectView(AsyncAPIView):
    """POST /api/detect: the path units in the field use."""

    permission_classes = [IsDevice]

    @extend_schema(request=DetectionIngestSerializer, responses=INGEST_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    async def post(self, request):
        return await ingest_response(request)


class LegacyDeleteView(APIView):
    """DELETE /api/delete/{id}: 200 with the new count, as the legacy service answered."""

    permission_classes = [CanDelete]

    @extend_schema(
        responses={
            200: inline_serializer(
                "LegacyDeleted", {"message": serializers.CharField(), "new_count": serializers.IntegerField()}
            ),
        }
    )
    def delete(self, request, pk: int):
        detection = get_object_or_404(Detection.objects.select_related("camera"), pk=pk)
        new_count = writes.detection_delete(detection=detection)
        return Response({"message": f"Detection {pk} deleted.", "new_count": new_count})


class StatsQuerySerializer(QuerySerializer):
    since = QueryTimeField(required=False)
    until = QueryTimeField(required=False)
    camera = serializers.CharField(required=False, max_length=100)
    vehicle_type = serializers.ChoiceField(choices=VehicleType.values, required=False)
    bucket = serializers.ChoiceField(choices=stats.BUCKETS, default="hour")
    tz = serializers.CharField(required=False, default="UTC", max_length=64)
    recent = serializers.IntegerField(required=False, default=20, min_value=0, max_value=100)

    def validate_tz(self, value):
        try:
            return zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise serializers.ValidationError(f"'{value}' is not an IANA time zone name.", code="invalid") from None

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

    @extend_schema(
        parameters=[StatsQuerySerializer],
        responses={
            200: inline_serializer(
                "Stats",
                {
                    "total_vehicles": serializers.IntegerField(),
                    "seq": serializers.IntegerField(),
                    "recent_logs": DetectionSerializer(many=True),
                    "by_vehicle_type": serializers.DictField(child=serializers.IntegerField()),
                    "by_camera": serializers.DictField(child=serializers.IntegerField()),
                    "series": serializers.DictField(),
                },
            ),
        },
    )
    def get(self, request):
        params = StatsQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.to_query()
        try:
            series = stats.series(query, now=timezone.now())
        except ValueError as problem:
            raise serializers.ValidationError({"since": [str(problem)]}, code="window_too_large") from None
        by_type, by_camera = stats.breakdowns(query)
        position = counters.current_position()
        return Response(
            {
                "total_vehicles": position.count,
                # The feed position these figures were read at: a client can resume
                # the socket from here with ?after=seq.
                "seq": position.seq,
                "recent_logs": DetectionSerializer(stats.recent_logs(query), many=True).data,
                "by_vehicle_type": by_type,
                "by_camera": by_camera,
                "series": series,
            }
        )


class MediaView(APIView):
    """Snapshots and thumbnails, for viewers only (they show plates): from
    MEDIA_ROOT, or read from the bucket and passed on (the bucket stays private
    and needs no route from the clients; docs/operations.md)."""

    throttle_classes = []

    @extend_schema(exclude=True)
    def get(self, request, path: str):
        store = storage.object_store()
        if store is None:
            return serve(request, path, document_root=settings.MEDIA_ROOT)
        try:
            # Whole, at most MAX_IMAGE_BYTES: a store that fails mid-way is then a
            # 503 here, not a response cut short.
            with store.open(path, "rb") as stored:
                data = stored.read()
        except FileNotFoundError:
            raise Http404(path) from None
        content_type, _ = mimetypes.guess_type(path)
        return HttpResponse(data, content_type=content_type or "application/octet-stream")
