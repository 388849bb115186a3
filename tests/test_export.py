"""CSV export: GET /api/detections/export.csv takes the list's filters, answers a
streamed CSV download to viewers, guards spreadsheets against formula cells,
and holds one page of rows in memory however large the table is."""

import csv
import io
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from conftest import detection_body, image_bytes
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient

from detections.core import images
from detections.core.writes import detection_create
from detections.models import Camera, Detection
from detections.operations import exports

pytestmark = pytest.mark.django_db

URL = "/api/detections/export.csv"
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
MOMENT = datetime(2026, 11, 24, 8, 15, 30, 120000, tzinfo=UTC)


def store(tracking_id="trk-1", *, camera="gate-1", vehicle_type="car", at=MOMENT, plate="", **extra) -> Detection:
    return detection_create(
        camera=Camera.objects.get_or_create(name=camera)[0],
        tracking_id=tracking_id,
        vehicle_type=vehicle_type,
        detected_at=at,
        plate=plate,
        **extra,
    ).detection


def rows_of(response) -> list[dict]:
    assert response.status_code == 200, getattr(response, "content", b"")
    body = b"".join(response.streaming_content).decode("utf-8")
    reader = csv.reader(io.StringIO(body))
    header = next(reader)
    assert header == COLUMNS
    return [dict(zip(header, row, strict=True)) for row in reader]


def exported_ids(client, **params) -> list[int]:
    return [int(row["id"]) for row in rows_of(client.get(URL, params))]


# --- What it answers -------------------------------------------------------------------------


def test_the_export_is_a_streamed_csv_download(viewer_client):
    store()

    response = viewer_client.get(URL)

    assert isinstance(response, StreamingHttpResponse)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="detections-') and disposition.endswith('.csv"')
    assert not response.has_header("Content-Length")


def test_each_detection_is_one_row_with_every_column(viewer_client):
    detection = store(
        "trk-0042",
        plate="34ABC123",
        confidence=0.91,
        bbox=[412, 220, 160, 96],
        image=images.verify(image_bytes()),
    )

    (row,) = rows_of(viewer_client.get(URL))

    assert row == {
        "id": str(detection.pk),
        "time": "2026-11-24T08:15:30.120000Z",
        "camera": "gate-1",
        "vehicle_type": "car",
        "tracking_id": "trk-0042",
        "plate": "34ABC123",
        "confidence": "0.91",
        "bbox": "[412,220,160,96]",
        "image_url": detection.image.url,
        "received_at": detection.received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def test_rows_come_oldest_first_with_empty_cells_for_what_was_not_sent(viewer_client):
    later = store("trk-2", at=MOMENT + timedelta(seconds=1))
    earlier = store("trk-1")

    rows = rows_of(viewer_client.get(URL))

    assert [int(r["id"]) for r in rows] == [earlier.pk, later.pk]
    assert {(r["plate"], r["confidence"], r["bbox"], r["image_url"]) for r in rows} == {("", "", "", "")}


def test_an_empty_selection_is_a_header_alone(viewer_client):
    assert rows_of(viewer_client.get(URL)) == []


# --- Filters ---------------------------------------------------------------------------------


@pytest.fixture
def variety():
    return {
        "gate-car": store("trk-a", camera="gate-1", vehicle_type="car", plate="34ABC123"),
        "gate-bus": store("trk-b", camera="gate-1", vehicle_type="bus", at=MOMENT + timedelta(hours=1)),
        "yard-car": store("trk-c", camera="yard", vehicle_type="car", at=MOMENT + timedelta(hours=2), plate="06XYZ999"),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"camera": "yard"}, ["yard-car"]),
        ({"vehicle_type": "car"}, ["gate-car", "yard-car"]),
        ({"camera": "gate-1", "vehicle_type": "bus"}, ["gate-bus"]),
        ({"since": "2026-11-24T09:00:00Z"}, ["gate-bus", "yard-car"]),
        ({"until": "2026-11-24T09:15:30.120Z"}, ["gate-car"]),
        ({"since": "2026-11-24T09:00:00Z", "until": "2026-11-24T10:00:00Z"}, ["gate-bus"]),
        ({"tracking_id": "trk-c"}, ["yard-car"]),
        ({"plate": "34ABC123"}, ["gate-car"]),
        ({}, ["gate-car", "gate-bus", "yard-car"]),
    ],
    ids=lambda value: ("-".join(value) or "no-filter") if isinstance(value, dict) else None,
)
def test_the_export_takes_the_same_filters_as_the_list(viewer_client, variety, params, expected):
    exported = exported_ids(viewer_client, **params)
    listed = [d["id"] for d in viewer_client.get("/api/detections/", {**params, "page_size": 500}).json()["results"]]

    assert exported == [variety[name].pk for name in expected]
    assert sorted(exported) == sorted(listed)


def test_a_bad_filter_is_a_400_in_json(viewer_client):
    response = viewer_client.get(URL, {"vehicle_type": "spaceship"})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["field"] == "vehicle_type"


def test_export_csv_is_not_taken_for_a_detection_id(viewer_client):
    store()

    response = viewer_client.get(URL, HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"


# --- Who may export -------------------------------------------------------------------------------


def test_anonymous_callers_get_401(client):
    response = client.get(URL)

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_edge_units_get_403(device_client):
    assert device_client.get(URL).status_code == 403


def test_viewers_and_staff_may_export(viewer_client, staff_client):
    store()

    assert len(rows_of(viewer_client.get(URL))) == 1
    assert len(rows_of(staff_client.get(URL))) == 1


# --- CSV injection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dangerous", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_written_as_text(viewer_client, dangerous):
    store(dangerous, plate=dangerous[:32], camera=f"cam{dangerous}"[:100])

    (row,) = rows_of(viewer_client.get(URL))

    assert row["tracking_id"] == "'" + dangerous
    assert row["plate"] == "'" + dangerous[:32]
    assert row["camera"] == f"cam{dangerous}"  # not at the start: harmless


def test_ordinary_cells_are_left_alone(viewer_client):
    store("trk-1", plate="34 ABC 123")

    (row,) = rows_of(viewer_client.get(URL))

    assert (row["tracking_id"], row["plate"]) == ("trk-1", "34 ABC 123")


# --- A large table ----------------------------------------------------------------------------------

LARGE = 200_000
MEMORY_BOUND = 16 * 1024 * 1024  # bytes of Python allocations at the peak


def bulk_insert(n: int, camera: Camera):
    """n detections in a few statements, straight into the table (no counters:
    this is about reading them back)."""
    digits = " UNION ALL ".join(f"SELECT {d} AS d" for d in range(10))
    number = " + ".join(f"{10**i} * t{i}.d" for i in range(6))
    tables = ", ".join(f"({digits}) AS t{i}" for i in range(6))
    if connection.vendor == "mysql":
        moment = "DATE_ADD('2026-01-01 00:00:00', INTERVAL n SECOND)"
        tracking = "CONCAT('bulk-', n)"
    else:
        moment = "datetime('2026-01-01 00:00:00', '+' || n || ' seconds')"
        tracking = "'bulk-' || n"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO detections_detection (camera_id, tracking_id, vehicle_type, detected_at, received_at,"
            " image, thumbnail, confidence, bbox, plate)"
            f" SELECT %s, {tracking}, 'car', {moment}, {moment},"
            " 'snapshots/2026/01/01/0123456789abcdef0123456789abcdef.jpg', '', 0.875, '[412,220,160,96]', '34ABC123'"
            f" FROM (SELECT {number} AS n FROM {tables}) AS numbers WHERE n < %s",
            [camera.pk, n],
        )


@pytest.fixture
def large_table(credentials):
    bulk_insert(LARGE, Camera.objects.get(name="gate-1"))
    assert Detection.objects.count() == LARGE


def stream_and_measure(chunks) -> tuple[int, int, int]:
    """(rows, bytes, peak traced memory) of consuming a response body."""
    rows = size = 0
    for chunk in chunks:
        rows += chunk.count(b"\r\n")
        size += len(chunk)
    return rows - 1, size, tracemalloc.get_traced_memory()[1]


def test_a_large_export_streams_with_bounded_memory(large_table, viewer_client):
    tracemalloc.start()
    try:
        response = viewer_client.get(URL)
        assert isinstance(response, StreamingHttpResponse)
        rows, size, peak = stream_and_measure(response.streaming_content)
    finally:
        tracemalloc.stop()

    assert rows == LARGE
    assert size > 30 * 1024 * 1024  # the body is far larger than the bound...
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB"  # ...and never held whole


def test_a_large_export_under_asgi_streams_with_bounded_memory(large_table, credentials):
    # Under ASGI the body must be an async iterator: Django reads a sync one
    # into a list before it sends the first byte. So the memory that matters is
    # the peak until the first chunks arrive; the rest is only counted (tracing
    # every allocation of 200k rows is slow, and the sync path does that above).
    async def export():
        response = await AsyncClient().get(URL, headers={"Authorization": f"Token {credentials.viewer}"})
        assert response.status_code == 200
        assert response.is_async
        chunks = aiter(response.streaming_content)
        rows = 0
        for _ in range(3):
            rows += (await anext(chunks)).count(b"\r\n")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        async for chunk in chunks:
            rows += chunk.count(b"\r\n")
        return rows - 1, peak

    tracemalloc.start()
    try:
        rows, peak = async_to_sync(export)()
    finally:
        tracemalloc.stop()

    assert rows == LARGE
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB before the first chunks"


def test_pages_continue_exactly_where_the_last_one_ended_when_times_tie(viewer_client, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_PAGE_SIZE", 3)
    same_time = [store(f"trk-{n}") for n in range(7)]  # one time: only the id orders them
    later = store("trk-later", at=MOMENT + timedelta(microseconds=1))

    assert exported_ids(viewer_client) == [d.pk for d in same_time] + [later.pk]


# --- Through a real server -------------------------------------------------------------------------


def test_a_real_server_streams_the_export_in_chunks(server):
    with server.device() as device:
        for n in range(3):
            body = detection_body(id=f"trk-{n}", time=f"2026-11-24T08:15:3{n}.000Z", plate=f"=cmd{n}")
            assert device.post("/api/detect", json=body).status_code == 201
    with server.http(server.credentials.viewer) as viewer:
        with viewer.stream("GET", URL, params={"camera": "gate-1"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/csv; charset=utf-8"
            assert response.headers["transfer-encoding"] == "chunked"
            body = response.read().decode()

    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["tracking_id"] for r in rows] == ["trk-0", "trk-1", "trk-2"]
    assert [r["plate"] for r in rows] == ["'=cmd0", "'=cmd1", "'=cmd2"]
