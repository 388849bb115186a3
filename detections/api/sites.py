"""/api/sites/ and /api/visits/ (protocol.md, "Sites, visits and occupancy"):
sites with their cameras' roles, the visits the engine derived, occupancy and
dwell. Writes go through `detections.sites.edits`; reads come from stored
visits (`detections.sites.queries`), never from a scan of the detections.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from detections.alerts.plates import normalize
from detections.api.pagination import StrictCursor
from detections.api.permissions import CanManageSites, CanViewVisits
from detections.api.queries import QuerySerializer, QueryTimeField
from detections.api.schema import ERROR_BODY
from detections.api.serializers import ApiModelSerializer
from detections.core.formats import EARLIEST, LATEST, format_time
from detections.models import Camera
from detections.sites import edits, payloads, queries
from detections.sites.models import Role, Site, Visit, VisitState, validate_tz

ERRORS = {code: ERROR_BODY for code in (400, 401, 403, 404)}
ROLES = ", ".join(Role.values)


class TimeField(serializers.DateTimeField):
    """ISO 8601 in, UTC without an offset; written as every time of the API is."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        return super().to_internal_value(value)

    def to_representation(self, value):
        return format_time(value) if value else None


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "description": "cameras that exist, each named once (a 400 otherwise)",
        "items": {
            "type": "object",
            "required": ["camera", "role"],
            "properties": {"camera": {"type": "string"}, "role": {"type": "string", "enum": Role.values}},
        },
    }
)
class CameraRolesField(serializers.Field):
    """[{"camera": "gate-1", "role": "entry"}, ...]: camera names that exist,
    each once, each with a role."""

    default_error_messages = {"invalid": 'expected a list of {"camera": name, "role": entry|exit|both}.'}

    def to_internal_value(self, data):
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError("give at least one camera with its role.", code="required")
        names, roles = [], []
        for index, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("camera"), str):
                raise serializers.ValidationError(
                    f'cameras[{index}] must be {{"camera": name, "role": {ROLES}}}.', code="invalid"
                )
            if item.get("role") not in Role.values:
                raise serializers.ValidationError(
                    f"cameras[{index}].role: {item.get('role')!r} is not a role; accepted: {ROLES}.",
                    code="invalid_role",
                )
            names.append(item["camera"])
            roles.append(item["role"])
        if len(set(names)) != len(names):
            raise serializers.ValidationError("each camera may be named once.", code="duplicate_camera")
        found = {camera.name: camera for camera in Camera.objects.filter(name__in=names)}
        unknown = [name for name in names if name not in found]
        if unknown:
            raise serializers.ValidationError(f"No camera named {', '.join(unknown)}.", code="unknown_camera")
        return [edits.CameraRole(found[name], role) for name, role in zip(names, roles, strict=True)]

    def to_representation(self, roles):
        return [
            {"camera": camera_name, "role": role}
            for camera_name, role in roles.order_by("camera__name").values_list("camera__name", "role")
        ]


class WindowSerializer(QuerySerializer):
    since = QueryTimeField(required=False)
    until = QueryTimeField(required=False)

    def validate(self, data):
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": ["until must be after since."]}, code="invalid")
        return data


class VisitQuerySerializer(WindowSerializer):
    state = serializers.ChoiceField(choices=VisitState.choices, required=False)
    plate = serializers.CharField(max_length=32, required=False, help_text="compared in its normal form")
    min_duration = serializers.IntegerField(min_value=0, required=False, help_text="seconds")


class OccupancyQuerySerializer(WindowSerializer):
    bucket = serializers.ChoiceField(choices=queries.BUCKETS, required=False, default="hour")

    def validate(self, data):
        data = super().validate(data)
        until = data.get("until") or timezone.now()
        since = data.get("since") or until - timedelta(days=1)
        if since >= until:
            raise serializers.ValidationError({"since": ["since must be before until."]}, code="invalid")
        buckets = (until - since).total_seconds() / BUCKET_SECONDS[data["bucket"]]
        if buckets > MAX_BUCKETS:
            raise serializers.ValidationError(
                {"bucket": [f"at most {MAX_BUCKETS} buckets a request; take a larger bucket or a shorter window."]},
                code="too_many_buckets",
            )
        return data


class DwellQuerySerializer(WindowSerializer):
    pass


BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS = 10_000


class VisitCursorPagination(StrictCursor, CursorPagination):
    """Newest entry first (an entry_missed visit by its exit), stable pages, no COUNT(*)."""

    ordering = ("-anchor_at", "-id")
    page_size = 50

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                position = datetime.fromisoformat(cursor.position)
            except ValueError:
                position = None
            if position is None or position.tzinfo is None or not EARLIEST <= position <= LATEST:
                raise NotFound(self.invalid_cursor_message)
        return cursor


VISIT = inline_serializer(
    "Visit",
    {
        "id": serializers.IntegerField(),
        "site": serializers.IntegerField(),
        "plate": serializers.CharField(help_text="the entry's read; the exit's for entry_missed"),
        "state": serializers.ChoiceField(choices=VisitState.choices),
        "entered_at": serializers.DateTimeField(allow_null=True),
        "exited_at": serializers.DateTimeField(allow_null=True),
        "duration_seconds": serializers.FloatField(allow_null=True),
        "entry_detection": serializers.IntegerField(allow_null=True),
        "exit_detection": serializers.IntegerField(allow_null=True),
        "overstay": serializers.BooleanField(),
        "entry_camera": serializers.CharField(allow_null=True),
        "exit_camera": serializers.CharField(allow_null=True),
    },
)
VISIT_PAGE = inline_serializer(
    "PaginatedVisitList",
    {
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": serializers.ListField(child=VISIT),
    },
)
OCCUPANCY = inline_serializer(
    "Occupancy",
    {
        "now": serializers.IntegerField(),
        "capacity": serializers.IntegerField(allow_null=True),
        "series": inline_serializer(
            "OccupancyBucket",
            {
                "t": serializers.CharField(help_text="the bucket's start, ISO 8601 with the site's offset"),
                "max": serializers.IntegerField(),
                "min": serializers.IntegerField(),
                "end": serializers.IntegerField(),
            },
            many=True,
        ),
    },
)
DWELL = inline_serializer(
    "Dwell",
    {
        "count": serializers.IntegerField(),
        "median_seconds": serializers.FloatField(allow_null=True),
        "p90_seconds": serializers.FloatField(allow_null=True),
        "histogram": inline_serializer(
            "DwellBucket",
            {"upto_seconds": serializers.IntegerField(allow_null=True), "count": serializers.IntegerField()},
            many=True,
        ),
    },
)


class SiteSerializer(ApiModelSerializer):
    cameras = CameraRolesField(help_text="the site's cameras, each with its role: entry, exit or both")
    tz = serializers.CharField(max_length=64, required=False, default="UTC", help_text="an IANA time zone")
    capacity = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    repeat_seconds = serializers.IntegerField(min_value=0, required=False)
    absent_after_seconds = serializers.IntegerField(min_value=1, required=False)
    max_stay_seconds = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    max_edits = serializers.IntegerField(min_value=0, max_value=2, required=False)
    since = TimeField(required=False, allow_null=True, help_text="covers reads at or after this; null: its creation")
    deriving = serializers.SerializerMethodField(help_text="true while its history is being derived again")
    created_at = TimeField(read_only=True)
    updated_at = TimeField(read_only=True)

    class Meta:
        model = Site
        fields = [
            "id",
            "name",
            "tz",
            "capacity",
            "cameras",
            "repeat_seconds",
            "absent_after_seconds",
            "max_stay_seconds",
            "max_edits",
            "since",
            "active",
            "deriving",
            "created_at",
            "updated_at",
        ]

    def validate_name(self, value):
        value = value.strip()
        if not value or not value.isprintable():
            raise serializers.ValidationError("name must be printable text.", code="invalid")
        return value

    def validate_tz(self, value):
        try:
            validate_tz(value)
        except Exception as problem:
            raise serializers.ValidationError(problem.messages[0], code="invalid_tz") from None
        return value

    def get_deriving(self, site) -> bool:
        return site.derived_revision != site.revision

    def create(self, validated_data):
        return edits.site_create(**validated_data)

    def update(self, instance, validated_data):
        return edits.site_update(instance, **validated_data)


@extend_schema_view(
    list=extend_schema(summary="List the sites", responses={200: SiteSerializer(many=True), **ERRORS}),
    create=extend_schema(summary="Define a site", responses={201: SiteSerializer, **ERRORS}),
    retrieve=extend_schema(summary="One site", responses={200: SiteSerializer, **ERRORS}),
    partial_update=extend_schema(summary="Change a site", responses={200: SiteSerializer, **ERRORS}),
    destroy=extend_schema(summary="Delete a site and its visits", responses={204: None, **ERRORS}),
)
class SiteViewSet(viewsets.ModelViewSet):
    documented_media_types = ["application/json"]  # forms are read too (schema.ApiSchema.map_parsers)
    queryset = Site.objects.order_by("name")
    serializer_class = SiteSerializer
    permission_classes = [CanManageSites]
    lookup_value_regex = "[0-9]+"
    pagination_class = None  # a handful, defined by staff
    filter_backends = []
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def destroy(self, request, *args, **kwargs):
        edits.site_delete(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The site's visits, newest entry first",
        parameters=[VisitQuerySerializer, *VisitCursorPagination.parameters()],
        responses={200: VISIT_PAGE, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def visits(self, request, pk=None):
        site = self.get_object()
        query = VisitQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        visits = Visit.objects.filter(site=site)
        if "state" in wanted:
            visits = visits.filter(state=wanted["state"])
        if "since" in wanted:
            visits = visits.filter(anchor_at__gte=wanted["since"])
        if "until" in wanted:
            visits = visits.filter(anchor_at__lt=wanted["until"])
        if wanted.get("plate"):
            visits = visits.filter(vehicle=normalize(wanted["plate"]))
        if "min_duration" in wanted:
            visits = visits.filter(duration_seconds__gte=wanted["min_duration"])
        paginator = VisitCursorPagination()
        page = paginator.paginate_queryset(visits, request, view=self)
        return paginator.get_paginated_response([payloads.visit_json(visit) for visit in page])

    @extend_schema(
        summary="How many vehicles are inside, now and over time",
        parameters=[OccupancyQuerySerializer],
        responses={200: OCCUPANCY, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def occupancy(self, request, pk=None):
        site = self.get_object()
        query = OccupancyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        tz = ZoneInfo(site.tz)
        now = timezone.now()
        until = wanted.get("until") or now
        since = wanted.get("since") or until - timedelta(days=1)
        series = queries.occupancy_series(site, since, until, wanted.get("bucket", "hour"), tz)
        return Response(
            {
                "now": queries.occupancy_now(site.pk, now),
                "capacity": site.capacity,
                "series": [
                    {"t": bucket.t.isoformat(), "max": bucket.max, "min": bucket.min, "end": bucket.end}
                    for bucket in series
                ],
            }
        )

    @extend_schema(
        summary="How long closed visits lasted", parameters=[DwellQuerySerializer], responses={200: DWELL, **ERRORS}
    )
    @action(detail=True, methods=["get"])
    def dwell(self, request, pk=None):
        site = self.get_object()
        query = DwellQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        until = query.validated_data.get("until") or timezone.now()
        since = query.validated_data.get("since") or until - timedelta(days=30)
        found = queries.dwell(site.pk, since, until)
        return Response(
            {
                "count": found.count,
                "median_seconds": found.median_seconds,
                "p90_seconds": found.p90_seconds,
                "histogram": [{"upto_seconds": bound, "count": n} for bound, n in found.histogram],
            }
        )


class VisitViewSet(viewsets.ReadOnlyModelViewSet):
    """/api/visits/{id}/: one visit."""

    queryset = Visit.objects.all()
    permission_classes = [CanViewVisits]
    lookup_value_regex = "[0-9]+"
    filter_backends = []
    http_method_names = ["get", "head", "options"]

    @extend_schema(summary="One visit", responses={200: VISIT, **ERRORS})
    def retrieve(self, request, *args, **kwargs):
        return Response(payloads.visit_json(self.get_object()))

    @extend_schema(exclude=True)
    def list(self, request, *args, **kwargs):
        raise NotFound("List a site's visits at /api/sites/{id}/visits/.")


router = SimpleRouter()
router.trailing_slash = "/?"
router.register("sites", SiteViewSet, basename="site")
router.register("visits", VisitViewSet, basename="visit")
urlpatterns = router.urls
