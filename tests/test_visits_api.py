"""/api/sites/{id}/visits/, /api/visits/{id}/, occupancy and dwell: read from
the stored visits the engine derived, for users who may view visits."""

import math
from datetime import timedelta

import pytest
from alert_helpers import client_with
from test_visit_engine import T0, make_site, read, run_engine

from detections.sites.models import Visit

pytestmark = pytest.mark.django_db(transaction=True)
START = T0


@pytest.fixture
def depot(cameras):
    site = make_site(tz="Europe/Istanbul")
    read("34ABC123", "in-1", 0)
    read("34ABC123", "out-1", 60)
    read("06XYZ77", "in-1", 10)
    read("35KLM900", "in-1", 20)
    read("35KLM900", "out-1", 30)
    read("07QQ100", "out-1", 40)
    run_engine()
    return site


@pytest.fixture
def reader(depot):
    return client_with("reader", "view_visit")


def test_the_visits_list_is_newest_entry_first_and_filters_by_state_plate_and_duration(depot, reader):
    body = reader.get(f"/api/sites/{depot.pk}/visits/").json()
    assert [(v["plate"], v["state"]) for v in body["results"]] == [
        ("07QQ100", "entry_missed"),
        ("35KLM900", "closed"),
        ("06XYZ77", "open"),
        ("34ABC123", "closed"),
    ]
    first = body["results"][-1]
    assert first["duration_seconds"] == 3600 and first["entry_camera"] == "in-1" and first["exit_camera"] == "out-1"
    assert reader.get(f"/api/visits/{first['id']}/").json() == first

    def plates(**params):
        return [v["plate"] for v in reader.get(f"/api/sites/{depot.pk}/visits/", params).json()["results"]]

    assert plates(state="open") == ["06XYZ77"]
    assert plates(plate="34 abc 123") == ["34ABC123"]
    assert plates(min_duration=1000) == ["34ABC123"]
    assert plates(page_size=2) == ["07QQ100", "35KLM900"]


def test_occupancy_counts_who_is_inside_by_minute_and_now(depot, reader):
    until = START + timedelta(minutes=65)
    body = reader.get(
        f"/api/sites/{depot.pk}/occupancy/",
        {"since": START.isoformat(), "until": until.isoformat(), "bucket": "minute"},
    ).json()
    assert body["now"] == 1 and body["capacity"] is None
    series = body["series"]
    assert len(series) == 65 and series[0]["t"].endswith("+03:00")  # the site's zone
    ends = [bucket["end"] for bucket in series]
    assert ends[0] == 1 and ends[10] == 2 and ends[20] == 3 and ends[30] == 2 and ends[60] == 1
    assert (series[10]["min"], series[10]["max"]) == (2, 2)


def test_occupancy_counts_a_visit_that_entered_long_before_the_window(depot, reader):
    # 06XYZ77 entered at minute 10 and is inside still; 34ABC123 left at minute 60.
    since = START + timedelta(hours=6)
    body = reader.get(
        f"/api/sites/{depot.pk}/occupancy/",
        {"since": since.isoformat(), "until": (since + timedelta(minutes=5)).isoformat(), "bucket": "minute"},
    ).json()
    assert [(bucket["min"], bucket["max"], bucket["end"]) for bucket in body["series"]] == [(1, 1, 1)] * 5


def test_dwell_takes_closed_visits_that_ended_in_the_window(depot, reader):
    body = reader.get(
        f"/api/sites/{depot.pk}/dwell/", {"since": START.isoformat(), "until": (START + timedelta(hours=2)).isoformat()}
    ).json()
    assert (body["count"], body["median_seconds"], body["p90_seconds"]) == (2, 600, 3600)
    assert {row["upto_seconds"]: row["count"] for row in body["histogram"]}[900] == 1
    assert {row["upto_seconds"]: row["count"] for row in body["histogram"]}[7200] == 1


def test_dwell_percentiles_are_the_nearest_rank_of_every_duration(depot, reader):
    # Durations on and either side of the histogram's bounds, many within one
    # minute, some fractional: what sorting them all would answer.
    durations = [59.5, 60, 60.25, 61, 119.999, 899.5, 900, 900, 901.75, 1799, 1800, 3599.5, 86399, 86400, 90000]
    durations += [1000 + n / 7 for n in range(40)]
    exited = START + timedelta(days=1)
    Visit.objects.bulk_create(
        Visit(
            site=depot,
            vehicle=f"V{n}",
            plate=f"V{n}",
            state="closed",
            anchor_detection_id=10_000 + n,
            anchor_at=exited - timedelta(seconds=d),
            entered_at=exited - timedelta(seconds=d),
            exited_at=exited,
            ends_at=exited,
            duration_seconds=d,
        )
        for n, d in enumerate(durations)
    )
    body = reader.get(
        f"/api/sites/{depot.pk}/dwell/",
        {"since": (exited - timedelta(minutes=1)).isoformat(), "until": (exited + timedelta(minutes=1)).isoformat()},
    ).json()
    ordered = sorted(durations)
    assert body["count"] == len(ordered)
    assert body["median_seconds"] == ordered[math.ceil(0.5 * len(ordered)) - 1]
    assert body["p90_seconds"] == ordered[math.ceil(0.9 * len(ordered)) - 1]
    bounds = [900, 1800, 3600, 7200, 14400, 28800, 86400, None]
    lower = [float("-inf"), *bounds[:-1]]
    expected = [
        {"upto_seconds": upto, "count": sum(1 for d in ordered if low <= d and (upto is None or d < upto))}
        for low, upto in zip(lower, bounds, strict=True)
    ]
    assert body["histogram"] == expected


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("occupancy", {"bucket": "week"}, "bucket"),
        ("occupancy", {"since": "not a time"}, "since"),
        ("occupancy", {"since": "2026-01-01T00:00:00Z", "until": "2026-12-01T00:00:00Z", "bucket": "minute"}, "bucket"),
        ("dwell", {"until": "garbage"}, "until"),
        ("visits", {"state": "parked"}, "state"),
        ("visits", {"min_duration": "-1"}, "min_duration"),
        ("visits", {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ],
)
def test_bad_queries_are_a_400_naming_the_parameter(depot, reader, path, params, field):
    response = reader.get(f"/api/sites/{depot.pk}/{path}/", params)
    assert response.status_code == 400 and response.json()["field"] == field


def test_visits_need_view_visit_whatever_public_feed_says(depot, credentials, settings):
    from conftest import api_client

    settings.PUBLIC_FEED = True
    visit_id = depot.visits.first().pk
    for client, status in ((api_client(), 401), (api_client(credentials.viewer), 403)):
        for path in (f"/api/sites/{depot.pk}/visits/", f"/api/sites/{depot.pk}/occupancy/", f"/api/visits/{visit_id}/"):
            assert client.get(path).status_code == status, path


def test_an_unknown_visit_or_site_is_a_json_404(reader):
    assert reader.get("/api/visits/999999/").json()["error"] == "not_found"
    assert reader.get("/api/sites/999999/occupancy/").status_code == 404


def test_a_made_up_cursor_is_a_404(depot, reader):
    assert reader.get(f"/api/sites/{depot.pk}/visits/", {"cursor": "cD1ub3RhdGltZQ=="}).status_code == 404
