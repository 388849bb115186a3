"""A route's journeys and an origin-destination matrix as CSV, streamed like
the detection export: GET /api/routes/{id}/journeys.csv and /api/od-matrix.csv."""

import csv
import io

import pytest
from alert_helpers import client_with
from conftest import api_client
from django.http import StreamingHttpResponse
from journey_helpers import bridge, read, started

from detections.journeys import engine
from detections.operations import exports

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def analyst():
    return client_with("analyst", "view_journey")


def table(response) -> list[list[str]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_journeys_of_a_route_stream_oldest_end_first_in_pages(analyst, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_PAGE_SIZE", 2)
    route = bridge()
    started()
    trips = [(read(f"=34ABC{n:03}", "bridge-s", n), read(f"=34ABC{n:03}", "bridge-n", 600 - n)) for n in range(5)]
    engine.catch_up()
    rows = table(analyst.get(f"/api/routes/{route.pk}/journeys.csv"))
    assert rows[0] == exports.JOURNEY_COLUMNS
    assert [int(row[5]) for row in rows[1:]] == [end.pk for _, end in reversed(trips)]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["plate"] == "'=34ABC004"  # a formula is written as text
    assert (first["seconds"], first["speed_kmh"], first["fuzzy"]) == ("592.0", repr(2400 * 3.6 / 592), "false")
    since = table(analyst.get(f"/api/routes/{route.pk}/journeys.csv", {"since": "2026-11-24T08:09:58Z"}))
    assert len(since) == 1 + 3
    bad = analyst.get(f"/api/routes/{route.pk}/journeys.csv", {"min_speed_kmh": "fast"})
    assert bad.status_code == 400 and bad.json()["field"] == "min_speed_kmh"


def test_a_matrix_as_csv_a_row_per_origin_in_the_order_asked(analyst):
    bridge()
    started()
    read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 300)
    engine.catch_up()
    params = {"cameras": "bridge-n,bridge-s", "since": "2026-11-24T07:00:00Z", "until": "2026-11-24T09:00:00Z"}
    assert table(analyst.get("/api/od-matrix.csv", params)) == [
        ["from", "bridge-n", "bridge-s"],
        ["bridge-n", "0", "0"],
        ["bridge-s", "1", "0"],
    ]
    bad = analyst.get("/api/od-matrix.csv", {"cameras": "nowhere"})
    assert bad.status_code == 400 and bad.json()["field"] == "cameras"


def test_the_exports_need_view_journey(credentials):
    route = bridge()
    viewer = api_client(credentials.viewer)
    for path in (f"/api/routes/{route.pk}/journeys.csv", "/api/od-matrix.csv?cameras=bridge-s"):
        assert viewer.get(path).status_code == 403
        assert api_client().get(path).status_code == 401
