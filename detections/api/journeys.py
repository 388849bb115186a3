"""/api/routes/, a route's journeys and travel times, and /api/od-matrix/
(protocol.md, "Routes and journeys"): reading needs 'view journey', changing
routes 'manage routes'; none of it is ever public. What is read is what the
journey engine stored (detections/journeys/queries.py)."""

import math
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import re_path
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from detections.alerts.plates import normalize
from detections.api.alert_serializers import _checked_name
from detections.api.pagination import DetectionCursorPagination
from detections.api.permissions import CanManageRoutes, CanViewJourneys
from detections.api.queries import QuerySerializer, QueryTimeField
from detections.api.schema import ERROR_BODY
from detections.api.serializers import ApiModelSerializer, StrictCharField
from detections.api.sites import TimeField
from detections.api.watchlists import NumberedPages, OptionalSlashRouter
from detections.core.formats import EARLIEST, LATEST
from detections.journeys import queries
from detections.journeys.models import check_ends
from detections.models import Camera, Journey, Route

ERRORS = {code: ERROR_BODY for code in (400, 401, 403, 404)}
METHODS = ["get", "post", "patch", "delete", "head", "options"]
# The longest range one travel-times or matrix request may span.
MAX_RANGE = timedelta(days=366)
# The most weeks a route's usual travel time is taken from.
MAX_USUAL_WEEKS = 52


class CameraNameField(serializers.SlugRelatedField):
    default_error_messages = {
        "does_not_exist": "unknown camera {value}.",
        "invalid": "expected a camera name.",
    }

    def __init__(self, **kwargs):
        super().__init__(slug_field="name", queryset=Camera.objects.all(), **kwargs)


class RouteSerializer(ApiModelSerializer):
    name = StrictCharField(max_length=100)
    from_camera = CameraNameField(help_text="a camera's name; the camera must exist (a 400 otherwise)")
    to_camera = CameraNameField(help_text="a camera's name, not from_camera's; the camera must exist (a 400 otherwise)")
    since = TimeField(required=False, allow_null=True, help_text="covers reads at or after this; null: its creation")
    created_at = TimeField(read_only=True)
    updated_at = TimeField(read_only=True)
    derived = serializers.SerializerMethodField(help_text="false while the engine derives the route's history again")

    class Meta:
        model = Route
        fields = ["id", "name", *Route.DERIVATION_FIELDS, "created_at", "updated_at", "derived"]

    def validate_name(self, value):
        return _checked_name(value)

    def validate_since(self, value):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise serializers.ValidationError("Enter a time between the years 1001 and 9998.", code="out_of_range")
        return value

    def validate(self, attrs):
        def given(name):
            return attrs[name] if name in attrs else getattr(self.instance, name, None)

        try:
            check_ends(given("from_camera"), given("to_camera"))
        except DjangoValidationError as problem:
            raise serializers.ValidationError(problem.message_dict, code="same_camera") from None
        return attrs

    def get_derived(self, route) -> bool:
        return route.derived_revision == route.revision


class JourneySerializer(serializers.Serializer):
    """A journey as the socket and webhooks show it too (queries.journey_json):
    read only, journeys are derived, never written."""

    id = serializers.IntegerField(read_only=True)
    route = serializers.IntegerField(read_only=True)
    plate = serializers.CharField(help_text="as the end camera read it", read_only=True)
    from_detection = serializers.IntegerField(read_only=True)
    to_detection = serializers.IntegerField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True)
    ended_at = serializers.DateTimeField(read_only=True)
    seconds = serializers.FloatField(read_only=True)
    speed_kmh = serializers.FloatField(allow_null=True, help_text="null without the route's distance", read_only=True)
    fuzzy = serializers.BooleanField(help_text="the start read is another vehicle's within one edit", read_only=True)
    speeding = serializers.BooleanField(read_only=True)

    def to_representation(self, journey):
        return queries.journey_json(journey)


class JourneyPages(DetectionCursorPagination):
    """Newest end first, on the (route, ended_at, id) index."""

    ordering = ("-ended_at", "-id")


class JourneyQuery(QuerySerializer):
    since = QueryTimeField(required=False, help_text="ended at or after")
    until = QueryTimeField(required=False, help_text="ended before")
    plate = serializers.CharField(required=False, help_text="the end read's plate, in its normal form")
    min_speed_kmh = serializers.FloatField(required=False)

    def validate_min_speed_kmh(self, value):
        if not math.isfinite(value):
            raise serializers.ValidationError("min_speed_kmh must be a finite number.", code="invalid")
        return value


class RangeQuery(QuerySerializer):
    """since/until (default: the day before now), at most MAX_RANGE apart."""

    since = QueryTimeField(required=False, help_text="default: a day before until")
    until = QueryTimeField(required=False, help_text="default: now")

    def validate(self, attrs):
        until = attrs.get("until") or timezone.now()
        since = attrs.get("since") or until - timedelta(days=1)
        if since >= until:
            raise serializers.ValidationError({"until": ["until must be after since."]}, code="invalid")
        if until - since > MAX_RANGE:
            raise serializers.ValidationError({"since": [f"at most {MAX_RANGE.days} days from since to until."]})
        return {**attrs, "since": since, "until": until}


def zone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise serializers.ValidationError(f"unknown time zone {value!r}.", code="invalid") from None


class TravelTimesQuery(RangeQuery):
    bucket = serializers.ChoiceField(choices=list(queries.BUCKETS), default="hour")
    tz = serializers.CharField(default="UTC", help_text="the zone buckets are aligned in, e.g. Europe/Istanbul")

    def validate_tz(self, value):
        return zone(value)


class TravelTimeNowQuery(QuerySerializer):
    at = QueryTimeField(required=False, help_text="the end of the hour looked at; default: now")
    weeks = serializers.IntegerField(
        default=4, min_value=1, max_value=MAX_USUAL_WEEKS, help_text="how many weeks before make the usual"
    )
    tz = serializers.CharField(default="UTC", help_text="the zone whose weekday and wall-clock hour are compared")

    def validate_tz(self, value):
        return zone(value)


class MatrixQuery(RangeQuery):
    cameras = serializers.CharField(
        help_text="camera names, comma-separated, in the order the matrix answers; each must exist and be named once"
    )
    max_seconds = serializers.IntegerField(default=1800, min_value=1, max_value=7 * 86400)

    def validate_cameras(self, value):
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise serializers.ValidationError("name at least one camera.", code="required")
        if len(set(names)) != len(names):
            raise serializers.ValidationError("a camera is named twice.", code="invalid")
        ids = dict(Camera.objects.filter(name__in=names).values_list("name", "pk"))
        unknown = [name for name in names if name not in ids]
        if unknown:
            raise serializers.ValidationError(f"unknown cameras: {', '.join(unknown)}.", code="does_not_exist")
        return [(name, ids[name]) for name in names]


TRAVEL_TIMES = inline_serializer(
    "TravelTimes",
    {
        "route": serializers.IntegerField(),
        "bucket": serializers.CharField(),
        "series": inline_serializer(
            "TravelTimeBucket",
            {
                "t": serializers.CharField(help_text="the bucket's start, with the offset of tz"),
                "count": serializers.IntegerField(),
                "median_seconds": serializers.FloatField(),
                "p85_seconds": serializers.FloatField(),
                "mean_speed_kmh": serializers.FloatField(allow_null=True),
            },
            many=True,
        ),
    },
)
TRAVEL_TIME_WINDOW = {"since": serializers.CharField(), "until": serializers.CharField()}
TRAVEL_TIME_NOW = inline_serializer(
    "TravelTimeNow",
    {
        "route": serializers.IntegerField(),
        "at": serializers.CharField(),
        "now": inline_serializer(
            "TravelTimeLastHour",
            {
                **TRAVEL_TIME_WINDOW,
                "count": serializers.IntegerField(),
                "median_seconds": serializers.FloatField(allow_null=True),
            },
        ),
        "usual": inline_serializer(
            "TravelTimeUsual",
            {
                "weeks": serializers.IntegerField(),
                "windows": inline_serializer("TravelTimeUsualWindow", TRAVEL_TIME_WINDOW, many=True),
                "count": serializers.IntegerField(),
                "median_seconds": serializers.FloatField(allow_null=True),
            },
        ),
    },
)
MATRIX = inline_serializer(
    "OriginDestinationMatrix",
    {
        "cameras": serializers.ListField(child=serializers.CharField()),
        "counts": serializers.ListField(child=serializers.ListField(child=serializers.IntegerField())),
    },
)


def checked(query_class, request):
    query = query_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


@extend_schema_view(
    list=extend_schema(responses={200: RouteSerializer(many=True), **ERRORS}),
    create=extend_schema(responses={201: RouteSerializer, **ERRORS}),
    retrieve=extend_schema(responses={200: RouteSerializer, **ERRORS}),
    partial_update=extend_schema(responses={200: RouteSerializer, **ERRORS}),
    destroy=extend_schema(responses={204: None, **ERRORS}),
)
class RouteViewSet(viewsets.ModelViewSet):
    """/api/routes/: ordered pairs of cameras; an edit derives the route's
    journeys again in the background, without events."""

    queryset = Route.objects.select_related("from_camera", "to_camera")
    serializer_class = RouteSerializer
    permission_classes = [CanManageRoutes]
    pagination_class = NumberedPages
    http_method_names = METHODS
    lookup_value_regex = "[0-9]+"

    @extend_schema(
        parameters=[JourneyQuery, *JourneyPages.parameters()],
        responses={200: JourneySerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"], permission_classes=[CanViewJourneys])
    def journeys(self, request, pk):
        """The route's journeys, newest end first, in cursor pages."""
        route = self.get_object()
        query = checked(JourneyQuery, request)
        journeys = journeys_of(route, query)
        paginator = JourneyPages()
        page = paginator.paginate_queryset(journeys, request, view=self)
        return paginator.get_paginated_response(JourneySerializer(page, many=True).data)

    @extend_schema(parameters=[TravelTimesQuery], responses={200: TRAVEL_TIMES, **ERRORS})
    @action(detail=True, methods=["get"], url_path="travel-times", permission_classes=[CanViewJourneys])
    def travel_times(self, request, pk):
        """Per bucket of journey end: count, median and p85 seconds (nearest
        rank), and distance_m x 3.6 / the mean seconds."""
        route = self.get_object()
        query = checked(TravelTimesQuery, request)
        series = queries.travel_times(route, query["since"], query["until"], query["bucket"], query["tz"])
        return Response({"route": route.pk, "bucket": query["bucket"], "series": series})

    @extend_schema(parameters=[TravelTimeNowQuery], responses={200: TRAVEL_TIME_NOW, **ERRORS})
    @action(detail=True, methods=["get"], url_path="travel-time-now", permission_classes=[CanViewJourneys])
    def travel_time_now(self, request, pk):
        """The median travel time of the journeys that ended in the hour before
        `at` against the usual: the median of those that ended in the same hour
        of the same weekday (wall clock in tz) in each of the `weeks` weeks
        before, taken together (nearest rank; null without a journey)."""
        route = self.get_object()
        query = checked(TravelTimeNowQuery, request)
        return Response(queries.travel_time_now(route, query.get("at") or timezone.now(), query["weeks"], query["tz"]))


def journeys_of(route: Route, query: dict):
    journeys = Journey.objects.filter(route=route)
    if "since" in query:
        journeys = journeys.filter(ended_at__gte=query["since"])
    if "until" in query:
        journeys = journeys.filter(ended_at__lt=query["until"])
    if "plate" in query:
        journeys = journeys.filter(vehicle=normalize(query["plate"]))
    if "min_speed_kmh" in query:
        journeys = journeys.filter(speed_kmh__gte=query["min_speed_kmh"])
    return journeys


MATRIX_PARAMETERS = [MatrixQuery]


class OdMatrixView(APIView):
    """GET /api/od-matrix/: transitions between the cameras asked, in the order asked."""

    permission_classes = [CanViewJourneys]

    @extend_schema(parameters=MATRIX_PARAMETERS, responses={200: MATRIX, **ERRORS})
    def get(self, request):
        names, counts = matrix_of(checked(MatrixQuery, request))
        return Response({"cameras": names, "counts": counts})


def matrix_of(query: dict) -> tuple[list[str], list[list[int]]]:
    names = [name for name, _ in query["cameras"]]
    ids = [pk for _, pk in query["cameras"]]
    return names, queries.od_matrix(ids, query["since"], query["until"], query["max_seconds"])


router = OptionalSlashRouter()
router.register("routes", RouteViewSet, basename="route")

urlpatterns = [
    re_path(r"^od-matrix/?$", OdMatrixView.as_view(), name="od-matrix"),
    *router.urls,
]
