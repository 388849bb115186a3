"""A route's journeys and travel times, and the origin-destination matrix, on
the API (protocol.md, "Routes and journeys"): read from what the engine
stored, for users with 'view journey' only."""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from alert_helpers import client_with
from conftest import api_client
from journey_helpers import at, bridge, brute_force_transitions, read, reads_as_pairing_sees_them, started

from detections.journeys import engine, queries, transitions
from detections.models import Camera

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def analyst():
    return client_with("analyst", "view_journey")


def test_the_journeys_of_a_route_newest_end_first_with_filters(analyst):
    route = bridge()
    started()
    slow = (read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 600))  # 14.4 km/h
    fast = (read("06XY277", "bridge-s", 100), read("06XY277", "bridge-n", 220))  # 72 km/h
    engine.catch_up()
    body = analyst.get(f"/api/routes/{route.pk}/journeys/").json()
    assert [j["to_detection"] for j in body["results"]] == [slow[1].pk, fast[1].pk]
    journey = body["results"][1]
    assert set(journey) >= {"id", "plate", "from_detection", "to_detection", "started_at", "ended_at", "seconds"}
    assert journey["seconds"] == 120 and journey["speed_kmh"] == pytest.approx(72)
    assert journey["ended_at"] == "2026-11-24T08:03:40.000000Z"

    def ids(**params):
        return [j["to_detection"] for j in analyst.get(f"/api/routes/{route.pk}/journeys/", params).json()["results"]]

    assert ids(min_speed_kmh=50) == [fast[1].pk]
    assert ids(plate="06 xy-277") == [fast[1].pk]
    assert ids(since="2026-11-24T08:05:00Z") == [slow[1].pk]
    assert ids(until="2026-11-24T08:05:00Z") == [fast[1].pk]
    bad = analyst.get(f"/api/routes/{route.pk}/journeys/", {"since": "soon"})
    assert bad.status_code == 400 and bad.json()["field"] == "since"
    assert analyst.get("/api/routes/999999/journeys/").status_code == 404


def test_travel_times_per_bucket_with_nearest_rank_percentiles(analyst):
    route = bridge(repeat_seconds=0)
    started()
    durations = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    for n, seconds in enumerate(durations):
        read(f"34ABC{n:03}", "bridge-s", 3600 + n * 10)
        read(f"34ABC{n:03}", "bridge-n", 3600 + n * 10 + seconds)
    read("06XY277", "bridge-s", 0), read("06XY277", "bridge-n", 240)  # the hour before
    engine.catch_up()
    response = analyst.get(
        f"/api/routes/{route.pk}/travel-times/",
        {"since": "2026-11-24T08:00:00Z", "until": "2026-11-24T12:00:00Z", "bucket": "hour", "tz": "Europe/Istanbul"},
    )
    assert response.status_code == 200, response.json()
    series = response.json()["series"]
    assert [b["t"] for b in series] == ["2026-11-24T11:00:00+03:00", "2026-11-24T12:00:00+03:00"]
    first, second = series
    assert (first["count"], first["median_seconds"], first["p85_seconds"]) == (1, 240, 240)
    # Ten journeys ending in the second hour: median the 5th value, p85 the 9th.
    assert (second["count"], second["median_seconds"], second["p85_seconds"]) == (10, 500, 900)
    assert second["mean_speed_kmh"] == pytest.approx(2400 * 3.6 / 550)
    quarter = analyst.get(
        f"/api/routes/{route.pk}/travel-times/",
        {"since": "2026-11-24T08:00:00Z", "until": "2026-11-24T12:00:00Z", "bucket": "15m"},
    ).json()["series"]
    assert sum(b["count"] for b in quarter) == 11 and quarter[0]["t"] == "2026-11-24T08:00:00+00:00"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bucket": "week"}, "bucket"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"since": "2026-12-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
    ],
)
def test_bad_travel_time_parameters_are_400s_naming_the_field(analyst, params, field):
    route = bridge()
    response = analyst.get(f"/api/routes/{route.pk}/travel-times/", params)
    assert response.status_code == 400 and response.json()["field"] == field


def test_the_matrix_answers_for_the_cameras_asked_in_the_order_asked(analyst):
    bridge()
    Camera.objects.create(name="tunnel")
    started()
    read("34ABC123", "bridge-s", 0)
    read("34ABC123", "bridge-s", 30)  # within 60 s at the same camera: dropped
    read("34ABC123", "bridge-n", 300)
    read("34ABC123", "tunnel", 500)
    read("06XY277", "tunnel", 0)
    read("06XY277", "bridge-s", 5000)  # too late for 1800 s
    engine.catch_up()
    params = {"since": "2026-11-24T07:00:00Z", "until": "2026-11-24T10:00:00Z"}
    body = analyst.get("/api/od-matrix/", {**params, "cameras": "tunnel,bridge-s,bridge-n"}).json()
    assert body == {"cameras": ["tunnel", "bridge-s", "bridge-n"], "counts": [[0, 0, 0], [0, 0, 1], [1, 0, 0]]}
    body = analyst.get("/api/od-matrix/", {**params, "cameras": "bridge-s,tunnel", "max_seconds": 7200}).json()
    # 34ABC123's bridge-s -> bridge-n -> tunnel is no bridge-s -> tunnel transition; 06XY277's tunnel -> bridge-s is.
    assert body["counts"] == [[0, 0], [1, 0]]
    assert analyst.get("/api/od-matrix/", {**params, "cameras": "tunnel,bridge-s", "max_seconds": 7200}).json()[
        "counts"
    ] == [[0, 1], [0, 0]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "cameras"),
        ({"cameras": "bridge-s,nowhere"}, "cameras"),
        ({"cameras": "bridge-s,bridge-s"}, "cameras"),
        ({"cameras": "bridge-s", "max_seconds": 0}, "max_seconds"),
        ({"cameras": "bridge-s", "since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ],
)
def test_bad_matrix_parameters_are_400s_naming_the_field(analyst, params, field):
    bridge()
    response = analyst.get("/api/od-matrix/", params)
    assert response.status_code == 400 and response.json()["field"] == field


def test_the_matrix_equals_a_brute_force_count_over_random_reads(analyst):
    rng = random.Random(5)
    names = ["a", "b", "c", "d"]
    for name in names:
        Camera.objects.create(name=name)
    started()
    for n in range(150):
        read(rng.choice(["34ABC123", "34ABC124", "06XY277"]), rng.choice(names), rng.randrange(0, 20000, 11), f"t{n}")
    engine.catch_up()
    reads = reads_as_pairing_sees_them()
    order = ["c", "a", "d", "b"]
    ids = [Camera.objects.get(name=name).pk for name in order]
    for max_seconds in (120, 1800):
        body = analyst.get(
            "/api/od-matrix/",
            {
                "cameras": ",".join(order),
                "since": at(2000).isoformat(),
                "until": at(15000).isoformat(),
                "max_seconds": max_seconds,
            },
        ).json()
        expected = transitions.count_matrix(
            reads, brute_force_transitions(reads), ids, at(2000), at(15000), max_seconds
        )
        assert body["counts"] == expected
    assert queries  # the module the view reads with


def test_journeys_travel_times_and_the_matrix_need_view_journey(credentials):
    route = bridge()
    viewer = api_client(credentials.viewer)
    for path in (
        f"/api/routes/{route.pk}/journeys/",
        f"/api/routes/{route.pk}/travel-times/",
        f"/api/routes/{route.pk}/travel-time-now/",
        "/api/od-matrix/?cameras=bridge-s",
    ):
        assert viewer.get(path).status_code == 403, path
        assert api_client().get(path).status_code == 401, path
    planner = client_with("planner", "manage_routes")
    assert planner.get(f"/api/routes/{route.pk}/journeys/").status_code == 200


def journeys_ending(route, *ends: tuple[datetime, float]) -> None:
    """Journeys stored as the engine stores them: (end time, seconds) each."""
    from detections.models import Journey

    Journey.objects.bulk_create(
        Journey(
            route=route,
            plate="x",
            vehicle="x",
            from_detection=n,
            to_detection=10**6 + n,
            started_at=ended - timedelta(seconds=seconds),
            ended_at=ended,
            seconds=seconds,
            speed_kmh=1.0,
        )
        for n, (ended, seconds) in enumerate(ends)
    )


def test_travel_time_now_against_the_same_hour_of_the_same_weekday_in_the_weeks_before(analyst):
    route = bridge()
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday

    def weeks_before(k: int, minutes: int) -> datetime:
        return now - timedelta(weeks=k, minutes=minutes)

    journeys_ending(
        route,
        (now - timedelta(minutes=50), 100),  # the last hour: 100, 200, 300
        (now - timedelta(minutes=20), 300),
        (now - timedelta(seconds=1), 200),
        (now, 999),  # at `at`: not before it
        (now - timedelta(minutes=61), 999),  # before the hour
        (weeks_before(1, 10), 70),  # the same hour a week before: 70 and 60
        (weeks_before(1, 59), 60),
        (weeks_before(1, -30), 999),  # an hour later that day
        (weeks_before(2, 30), 80),
        (weeks_before(3, 5), 90),
        (weeks_before(5, 5), 600),  # five weeks before
        (now - timedelta(days=1, minutes=30), 999),  # yesterday, same hour
    )
    url = f"/api/routes/{route.pk}/travel-time-now/"
    body = analyst.get(url, {"at": "2026-11-24T09:00:00Z"}).json()
    assert body["route"] == route.pk and body["at"] == "2026-11-24T09:00:00.000000Z"
    assert body["now"] == {
        "since": "2026-11-24T08:00:00.000000Z",
        "until": "2026-11-24T09:00:00.000000Z",
        "count": 3,
        "median_seconds": 200,
    }
    usual = body["usual"]
    # 60, 70, 80, 90: the nearest-rank median is the second.
    assert (usual["weeks"], usual["count"], usual["median_seconds"]) == (4, 4, 70)
    assert usual["windows"][0] == {"since": "2026-11-17T08:00:00.000000Z", "until": "2026-11-17T09:00:00.000000Z"}
    assert len(usual["windows"]) == 4
    five = analyst.get(url, {"at": "2026-11-24T09:00:00Z", "weeks": 5}).json()["usual"]
    assert (five["count"], five["median_seconds"]) == (5, 80)
    # No journey at all: counts of 0, no median.
    empty = analyst.get(url, {"at": "2026-06-01T12:00:00Z"}).json()
    assert empty["now"]["count"] == 0 and empty["now"]["median_seconds"] is None
    assert empty["usual"]["count"] == 0 and empty["usual"]["median_seconds"] is None
    # The default `at` is now.
    assert analyst.get(url).json()["now"]["count"] == 0


def test_the_usual_keeps_the_wall_clock_hour_across_a_clock_change(analyst):
    route = bridge()
    # Berlin put its clocks back on 25 October 2026: 8:30 on 3 November is 07:30 UTC,
    # 8:30 two weeks before (summer time) 06:30 UTC.
    journeys_ending(route, (datetime(2026, 10, 20, 6, 0, tzinfo=UTC), 120))
    url = f"/api/routes/{route.pk}/travel-time-now/"
    params = {"at": "2026-11-03T07:30:00Z", "weeks": 2}
    berlin = analyst.get(url, {**params, "tz": "Europe/Berlin"}).json()["usual"]
    assert berlin["windows"][1] == {"since": "2026-10-20T05:30:00.000000Z", "until": "2026-10-20T06:30:00.000000Z"}
    assert (berlin["count"], berlin["median_seconds"]) == (1, 120)
    assert analyst.get(url, params).json()["usual"]["count"] == 0  # in UTC, 06:30 to 07:30 that day


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"weeks": 0}, "weeks"),
        ({"weeks": 53}, "weeks"),
        ({"weeks": "many"}, "weeks"),
        ({"weeks": ""}, "weeks"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"at": "soon"}, "at"),
    ],
)
def test_bad_travel_time_now_parameters_are_400s_naming_the_field(analyst, params, field):
    route = bridge()
    response = analyst.get(f"/api/routes/{route.pk}/travel-time-now/", params)
    assert response.status_code == 400 and response.json()["field"] == field
    assert analyst.get("/api/routes/999999/travel-time-now/").status_code == 404


def test_travel_time_now_near_the_earliest_time_stored_answers(analyst):
    route = bridge()
    body = analyst.get(f"/api/routes/{route.pk}/travel-time-now/", {"at": "1001-01-02T00:00:00Z", "weeks": 52}).json()
    assert body["usual"]["count"] == 0


@pytest.mark.parametrize(
    ("bucket", "tz", "since"),
    [
        ("15m", "UTC", "2026-11-24T00:00:00"),
        ("hour", "Europe/Berlin", "2026-10-24T12:00:00"),  # the clock goes back an hour
        ("day", "Europe/Berlin", "2026-03-27T00:00:00"),  # the clock goes forward
        ("hour", "Australia/Lord_Howe", "2026-04-04T00:00:00"),  # back half an hour
        ("15m", "Asia/Kathmandu", "2026-11-24T00:00:00"),  # +05:45
        ("day", "America/Sao_Paulo", "2018-11-02T12:00:00"),  # forward over midnight
        ("day", "America/Sao_Paulo", "2019-02-15T12:00:00"),  # back over midnight: a date seen twice
        ("hour", "Africa/Monrovia", "1972-01-05T12:00:00"),  # -00:44:30 to UTC
    ],
)
def test_travel_times_equal_a_brute_force_in_any_time_zone(bucket, tz, since):
    """The database buckets and ranks; a brute force over the journeys in
    Python (bucket_start per journey, nearest rank) must agree, with ties,
    around clock changes, and in offsets that are not whole hours."""
    from zoneinfo import ZoneInfo

    from detections.models import Journey

    route = bridge()
    rng = random.Random(f"{bucket}{tz}")
    start = datetime.fromisoformat(since).replace(tzinfo=UTC)
    span = timedelta(days=3)
    ends = [start + timedelta(seconds=rng.uniform(0, span.total_seconds())) for _ in range(1500)]
    ends += [start, start + timedelta(hours=2, minutes=15)]  # on bucket edges in most zones
    journeys = [
        Journey(
            route=route,
            plate="x",
            vehicle="x",
            from_detection=n,
            to_detection=10**6 + n,
            started_at=ended - timedelta(seconds=60),
            ended_at=ended,
            seconds=float(rng.choice([60, 90, 120, 150]) if n % 2 else rng.randrange(30, 3000)),
            speed_kmh=1.0,
        )
        for n, ended in enumerate(ends)
    ]
    Journey.objects.bulk_create(journeys)
    zone = ZoneInfo(tz)
    grouped = {}
    for journey in sorted(journeys, key=lambda j: j.ended_at):
        grouped.setdefault(queries.bucket_start(journey.ended_at, bucket, zone).isoformat(), []).append(journey.seconds)
    expected = [
        (t, len(v), sorted(v)[math.ceil(len(v) / 2) - 1], sorted(v)[math.ceil(len(v) * 85 / 100) - 1])
        for t, v in grouped.items()
    ]
    series = queries.travel_times(route, start - timedelta(days=1), start + span + timedelta(days=1), bucket, zone)
    assert [(b["t"], b["count"], b["median_seconds"], b["p85_seconds"]) for b in series] == expected
    means = [2400 * 3.6 * len(v) / sum(v) for v in grouped.values()]
    assert [b["mean_speed_kmh"] for b in series] == pytest.approx(means, rel=1e-12)


def test_travel_times_over_a_range_cut_inside_quarter_hours():
    """Buckets are read from each journey's stored UTC quarter hour (`slot`,
    computed by the database); a range that starts or ends inside a quarter
    hour still counts only the journeys inside it, to the microsecond."""
    from detections.models import Journey

    route = bridge()
    hour = datetime(2026, 11, 24, 10, tzinfo=UTC)
    offsets = [timedelta(0), timedelta(minutes=5), timedelta(minutes=14, seconds=59, microseconds=999999)]
    offsets += [timedelta(minutes=15), timedelta(minutes=20), timedelta(minutes=29, seconds=59)]
    Journey.objects.bulk_create(
        Journey(
            route=route,
            plate="x",
            vehicle="x",
            from_detection=n,
            to_detection=100 + n,
            started_at=hour + offset - timedelta(seconds=60),
            ended_at=hour + offset,
            seconds=float(10 * (n + 1)),
        )
        for n, offset in enumerate(offsets)
    )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert [
        slot - (hour - epoch) // timedelta(minutes=15)
        for slot in Journey.objects.order_by("ended_at").values_list("slot", flat=True)
    ] == [0, 0, 0, 1, 1, 1]
    series = queries.travel_times(route, hour + timedelta(minutes=5), hour + timedelta(minutes=20), "15m", UTC)
    assert [(b["t"], b["count"], b["median_seconds"], b["p85_seconds"]) for b in series] == [
        ("2026-11-24T10:00:00+00:00", 2, 20.0, 30.0),
        ("2026-11-24T10:15:00+00:00", 1, 40.0, 40.0),
    ]
    series = queries.travel_times(route, hour, hour + timedelta(minutes=20, microseconds=1), "hour", UTC)
    assert [(b["t"], b["count"], b["median_seconds"], b["p85_seconds"]) for b in series] == [
        ("2026-11-24T10:00:00+00:00", 5, 30.0, 50.0)
    ]
