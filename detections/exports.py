"""CSV export: GET /api/detections/export.csv and the admin's "Export selected to CSV".

The rows are read in pages of EXPORT_PAGE_SIZE by keyset pagination on
(detected_at, id), and written as they are read, so an export of a million rows
holds one page in memory at a time. (QuerySet.iterator() would not do: MySQL's
driver fetches a whole result set into memory however it is iterated.)

Under ASGI (daphne) the body is an async iterator: Django would read a
synchronous one into a list before sending the first byte.
"""

import csv
import io
import json

from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from .events import format_time
from .filters import DetectionFilter
from .models import Detection
from .permissions import CanView

EXPORT_PAGE_SIZE = 2000
COLUMNS = [
    "id",
    "time",
    "camera",
    "vehicle_type",
    "tracking_id",
    "plate",
    "confidence",
    "bbox",
    "image_url",
    "received_at",
]
# What the rows are read as: one tuple per row, no model instances.
_FIELDS = [
    "id",
    "detected_at",
    "camera__name",
    "vehicle_type",
    "tracking_id",
    "plate",
    "confidence",
    "bbox",
    "image",
    "received_at",
]
# A spreadsheet runs a cell that starts with one of these as a formula
# (OWASP, "CSV Injection"); a leading apostrophe makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _row(values) -> list[str]:
    pk, detected_at, camera, vehicle_type, tracking_id, plate, confidence, bbox, image, received_at = values
    return [
        safe_cell(pk),
        safe_cell(format_time(detected_at)),
        safe_cell(camera),
        safe_cell(vehicle_type),
        safe_cell(tracking_id),
        safe_cell(plate),
        safe_cell("" if confidence is None else repr(confidence)),
        safe_cell("" if bbox is None else json.dumps(bbox, separators=(",", ":"))),
        safe_cell(default_storage.url(image) if image else ""),
        safe_cell(format_time(received_at)),
    ]


def _write(rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


class CsvPages:
    """The CSV text of a queryset, one chunk per page of rows, oldest first."""

    def __init__(self, queryset, page_size: int = EXPORT_PAGE_SIZE):
        self.queryset = queryset.order_by("detected_at", "id").values_list(*_FIELDS)
        self.page_size = page_size
        self.after = None  # (detected_at, id) of the last row written
        self.header_sent = False
        self.done = False

    def next_chunk(self) -> str | None:
        """The next chunk of text, or None at the end."""
        if not self.header_sent:
            self.header_sent = True
            return _write([COLUMNS])
        if self.done:
            return None
        page = self.queryset
        if self.after is not None:
            moment, pk = self.after
            page = page.filter(Q(detected_at__gt=moment) | Q(detected_at=moment, id__gt=pk))
        rows = list(page[: self.page_size])
        if len(rows) < self.page_size:
            self.done = True
        if not rows:
            return None
        self.after = (rows[-1][1], rows[-1][0])
        return _write(_row(values) for values in rows)

    def __iter__(self):
        while (chunk := self.next_chunk()) is not None:
            yield chunk

    async def __aiter__(self):
        # One page per hop to the sync thread, where the ORM runs.
        read = sync_to_async(self.next_chunk)
        while (chunk := await read()) is not None:
            yield chunk


def csv_response(request, queryset, *, name: str = "detections") -> StreamingHttpResponse:
    """A streamed CSV download of `queryset` (Django request: ASGI or not)."""
    pages = CsvPages(queryset)
    body = pages.__aiter__() if isinstance(request, ASGIRequest) else iter(pages)
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response["Cache-Control"] = "no-store"  # plates are personal data
    return response


class CsvOrJsonErrors(BaseContentNegotiation):
    """The body is CSV whatever the Accept header says (no 406 for `Accept:
    text/csv`); errors are JSON like everywhere else in the API."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DetectionExportView(APIView):
    """GET /api/detections/export.csv: the detections the list's filters select, as CSV."""

    permission_classes = [CanView]
    content_negotiation_class = CsvOrJsonErrors

    @extend_schema(
        parameters=[DetectionFilter],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="CSV, oldest first, columns: " + ", ".join(COLUMNS) + ". Streamed.",
            )
        },
    )
    def get(self, request):
        selected = DetectionFilter(request.query_params, queryset=Detection.objects.all(), request=request)
        if not selected.is_valid():
            raise exceptions.ValidationError(selected.errors)
        return csv_response(request._request, selected.qs)
