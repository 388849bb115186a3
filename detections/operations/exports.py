"""CSV export, streamed: the rows behind GET /api/detections/export.csv
(api/exports.py) and the admin's "Export selected to CSV", and the journeys
and origin-destination matrices of GET /api/routes/{id}/journeys.csv and
/api/od-matrix.csv.

The rows are read in keyset pages of EXPORT_PAGE_SIZE and written as they are
read, so an export of a million rows holds one page in memory at a time.

Under ASGI (daphne) the body is an async iterator: Django would read a
synchronous one into a list before sending the first byte.
"""

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator

from asgiref.sync import sync_to_async
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.encoding import filepath_to_uri

from detections.core.formats import format_time
from detections.core.paging import time_ordered_pages
from detections.models import Camera

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
# What the rows are read as: one tuple per row, no model instances, and no
# join: camera names come from a small dict, so each page is one range scan
# of the time index.
_FIELDS = [
    "camera_id",
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


def _url_of(storage):
    """name -> URL. For local files, the prefix is joined once rather than per row."""
    if isinstance(storage, FileSystemStorage):
        base = storage.base_url
        return lambda name: base + filepath_to_uri(name).lstrip("/")
    return storage.url


def _row(values, cameras: dict[int, str], url) -> list[str]:
    pk, detected_at, camera_id, vehicle_type, tracking_id, plate, confidence, bbox, image, received_at = values
    # Only the text columns can start with a formula character: ids, numbers,
    # times, the box ("[") and URLs cannot.
    return [
        pk,
        format_time(detected_at),
        safe_cell(cameras[camera_id]),
        safe_cell(vehicle_type),
        safe_cell(tracking_id),
        safe_cell(plate),
        "" if confidence is None else repr(confidence),
        "" if bbox is None else json.dumps(bbox, separators=(",", ":")),
        url(image) if image else "",
        format_time(received_at),
    ]


def _write(rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


class CsvPages:
    """CSV text read page by page: the header, then one chunk per page of rows.
    `pages` yields lists of value tuples; `rows(page)` turns one into CSV rows."""

    def __init__(self, header: list[str], pages: Iterator[list], rows: Callable[[list], Iterable[list]]):
        self.header = header
        self.pages = pages
        self.rows = rows
        self.header_sent = False

    def next_chunk(self) -> str | None:
        """The next chunk of text, or None at the end."""
        if not self.header_sent:
            self.header_sent = True
            return _write([self.header])
        page = next(self.pages, None)
        if page is None:
            return None
        return _write(self.rows(page))

    def __iter__(self):
        while (chunk := self.next_chunk()) is not None:
            yield chunk

    async def __aiter__(self):
        # One page per hop to the sync thread, where the ORM runs.
        read = sync_to_async(self.next_chunk)
        while (chunk := await read()) is not None:
            yield chunk


def detection_pages(queryset, page_size: int | None = None) -> CsvPages:
    """The detections of a queryset, oldest first."""
    cameras: dict[int, str] = {}
    url = _url_of(default_storage)

    def rows(page):
        unknown = {values[2] for values in page} - cameras.keys()
        if unknown:
            cameras.update(Camera.objects.filter(pk__in=unknown).values_list("pk", "name"))
        return (_row(values, cameras, url) for values in page)

    return CsvPages(COLUMNS, time_ordered_pages(queryset, _FIELDS, page_size or EXPORT_PAGE_SIZE), rows)


JOURNEY_COLUMNS = [
    "id",
    "ended_at",
    "route",
    "plate",
    "from_detection",
    "to_detection",
    "started_at",
    "seconds",
    "speed_kmh",
    "fuzzy",
    "speeding",
]
_JOURNEY_FIELDS = ["route_id", "plate", "from_detection", "to_detection", "started_at", "seconds", "speed_kmh"]
_JOURNEY_FIELDS += ["fuzzy", "speeding"]


def journey_pages(queryset, page_size: int | None = None) -> CsvPages:
    """The journeys of a queryset, oldest end first."""

    def rows(page):
        for pk, ended_at, route, plate, start, end, started_at, seconds, speed, fuzzy, speeding in page:
            yield [
                pk,
                format_time(ended_at),
                route,
                safe_cell(plate),
                start,
                end,
                format_time(started_at),
                repr(seconds),
                "" if speed is None else repr(speed),
                str(fuzzy).lower(),
                str(speeding).lower(),
            ]

    return CsvPages(
        JOURNEY_COLUMNS,
        time_ordered_pages(queryset, _JOURNEY_FIELDS, page_size or EXPORT_PAGE_SIZE, time_field="ended_at"),
        rows,
    )


def matrix_pages(cameras: list[str], counts: list[list[int]]) -> CsvPages:
    """An origin-destination matrix: a row per origin, a column per destination."""
    page = [[safe_cell(name), *row] for name, row in zip(cameras, counts, strict=True)]
    return CsvPages(["from", *(safe_cell(name) for name in cameras)], iter([page] if page else []), iter)


def streamed(request, pages: CsvPages, *, name: str) -> StreamingHttpResponse:
    """A streamed CSV download (Django request: ASGI or not)."""
    body = pages.__aiter__() if isinstance(request, ASGIRequest) else iter(pages)
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response["Cache-Control"] = "no-store"  # plates are personal data
    return response


def csv_response(request, queryset, *, name: str = "detections") -> StreamingHttpResponse:
    """A streamed CSV download of detections."""
    return streamed(request, detection_pages(queryset), name=name)
