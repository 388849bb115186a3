"""GET /api/detections/export.csv: the detections the list's filters select, as
CSV, streamed (the streaming itself: detections/operations/exports.py); a
route's journeys and an origin-destination matrix the same way."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation

from detections.api.filters import DetectionFilter
from detections.api.journeys import MATRIX_PARAMETERS, JourneyQuery, MatrixQuery, checked, journeys_of, matrix_of
from detections.api.permissions import CanView, CanViewJourneys
from detections.models import Detection, Route, VehicleType
from detections.operations.exports import (
    COLUMNS,
    JOURNEY_COLUMNS,
    csv_response,
    journey_pages,
    matrix_pages,
    streamed,
)


class CsvOrJsonErrors(BaseContentNegotiation):
    """The body is CSV whatever the Accept header says (no 406 for `Accept:
    text/csv`); errors are JSON like everywhere else in the API."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# The list's filters (filters.DetectionFilter), spelled out: the schema
# generator documents a filterset on list views only.
FILTER_PARAMETERS = [
    OpenApiParameter("camera", OpenApiTypes.STR, description="camera name"),
    OpenApiParameter("vehicle_type", OpenApiTypes.STR, enum=VehicleType.values),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="detections at or after (ISO 8601)"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="detections before (ISO 8601)"),
    OpenApiParameter("tracking_id", OpenApiTypes.STR),
    OpenApiParameter("plate", OpenApiTypes.STR),
]


class DetectionExportView(GenericAPIView):
    """GET /api/detections/export.csv: the detections the list's filters select, as CSV."""

    permission_classes = [CanView]
    content_negotiation_class = CsvOrJsonErrors
    queryset = Detection.objects.all()
    filterset_class = DetectionFilter
    pagination_class = None  # streamed whole, never paged

    @extend_schema(
        operation_id="api_detections_export_csv",
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="CSV, oldest first, columns: " + ", ".join(COLUMNS) + ". Streamed.",
            ),
        },
    )
    def get(self, request):
        # The list's filter backend: a bad value is a 400 with the field, as on the list.
        return csv_response(request._request, self.filter_queryset(self.get_queryset()))


class JourneyExportView(GenericAPIView):
    """GET /api/routes/{id}/journeys.csv: a route's journeys the list's filters select, as CSV."""

    permission_classes = [CanViewJourneys]
    content_negotiation_class = CsvOrJsonErrors
    queryset = Route.objects.all()
    pagination_class = None

    @extend_schema(
        operation_id="api_routes_journeys_csv",
        parameters=[JourneyQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="CSV, oldest end first, columns: " + ", ".join(JOURNEY_COLUMNS) + ". Streamed.",
            ),
        },
    )
    def get(self, request, pk):
        route = self.get_object()
        journeys = journeys_of(route, checked(JourneyQuery, request))
        return streamed(request._request, journey_pages(journeys), name=f"journeys-route-{route.pk}")


class OdMatrixExportView(GenericAPIView):
    """GET /api/od-matrix.csv: the matrix of GET /api/od-matrix/, as CSV."""

    permission_classes = [CanViewJourneys]
    content_negotiation_class = CsvOrJsonErrors
    pagination_class = None

    @extend_schema(
        operation_id="api_od_matrix_csv",
        parameters=MATRIX_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="CSV: a header row `from` and the cameras asked, then one row per origin camera.",
            ),
        },
    )
    def get(self, request):
        names, counts = matrix_of(checked(MatrixQuery, request))
        return streamed(request._request, matrix_pages(names, counts), name="od-matrix")
