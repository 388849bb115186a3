"""GET /api/stats (protocol.md, Statistics and history), and the counters behind it."""

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from conftest import ServerProcess, api_client, detection_body, stored_files
from django.core.management import call_command
from django.utils import timezone
from helpers import assert_counters_match_the_table

from detections.core import counters
from detections.ingest.body import VEHICLE_TYPES
from detections.models import CameraTypeTotal, Detection, Event, FeedState, HourlyCount

pytestmark = pytest.mark.django_db

# (tracking id, camera, vehicle type, time): two days of traffic at two gates.
# "d" is 01:30 on the 24th in Istanbul (UTC+3) but still the 23rd in UTC.
TRAFFIC = [
    ("e", "gate-1", "car", "2026-11-23T10:00:00Z"),
    ("d", "gate-2", "bus", "2026-11-23T22:30:00Z"),
    ("a", "gate-1", "car", "2026-11-24T08:15:00Z"),
    ("b", "gate-1", "truck", "2026-11-24T08:45:00Z"),
    ("c", "gate-2", "car", "2026-11-24T09:10:00Z"),
]
TWO_UTC_DAYS = {"since": "2026-11-23T00:00:00Z", "until": "2026-11-25T00:00:00Z"}


# --- Helpers -----------------------------------------------------------------------------


@pytest.fixture
def traffic(device_client) -> dict[str, dict]:
    """TRAFFIC posted through the API: tracking id -> the stored detection as answered."""
    stored = {}
    for tracking_id, camera, vehicle_type, time in TRAFFIC:
        body = detection_body(id=tracking_id, camera=camera, vehicle_type=vehicle_type, time=time)
        response = device_client.post("/api/detect", body, format="json")
        assert response.status_code == 201, response.content
        stored[tracking_id] = response.json()
    return stored


def get_stats(client, **params) -> dict:
    """GET /api/stats as a viewer, expecting 200."""
    response = client.get("/api/stats", params)
    assert response.status_code == 200, response.content
    return response.json()


def nonzero(counts: dict) -> dict:
    return {key: n for key, n in counts.items() if n}


def series_counts(stats: dict) -> dict[str, int]:
    """Bucket start -> count, as the series lists them."""
    return {point["start"]: point["count"] for point in stats["series"]["points"]}


# --- Legacy fields -----------------------------------------------------------------------------


def test_total_vehicles_and_recent_logs_follow_what_was_posted_and_deleted(viewer_client, staff_client, traffic):
    assert staff_client.delete(f"/api/delete/{traffic['b']['id']}").status_code == 200

    stats = get_stats(viewer_client)

    assert stats["total_vehicles"] == 4
    assert [log["tracking_id"] for log in stats["recent_logs"]] == ["c", "a", "d", "e"]
    assert stats["recent_logs"][0] == traffic["c"]


def test_recent_logs_carry_image_urls_never_base64(viewer_client, traffic, _media_root):
    stats = get_stats(viewer_client)

    media_files = set(stored_files(_media_root))
    for log in stats["recent_logs"]:
        assert "vehicle_img" not in log and "image" not in log
        assert log["image_url"].startswith("/media/snapshots/")
        assert log["thumbnail_url"].startswith("/media/thumbnails/")
        assert _media_root / log["image_url"].removeprefix("/media/") in media_files
        assert _media_root / log["thumbnail_url"].removeprefix("/media/") in media_files
        assert all(len(str(value)) < 200 for value in log.values())


def test_recent_logs_are_limited_by_the_recent_parameter(viewer_client, traffic):
    stats = get_stats(viewer_client, recent=2)

    assert [log["tracking_id"] for log in stats["recent_logs"]] == ["c", "b"]


def test_stats_of_an_empty_database_are_zero(viewer_client):
    stats = get_stats(viewer_client)

    assert stats["total_vehicles"] == 0
    assert stats["recent_logs"] == []
    assert stats["by_vehicle_type"] == {vehicle_type: 0 for vehicle_type in VEHICLE_TYPES}
    assert stats["by_camera"] == {}


@pytest.mark.parametrize("who, status", [("nobody", 401), ("device", 403)])
def test_stats_are_for_viewers_only(credentials, who, status):
    response = api_client({"nobody": None, "device": credentials.device}[who]).get("/api/stats")

    assert response.status_code == status, response.content
    assert response.json()["error"] and response.json()["detail"]


# --- Breakdowns -----------------------------------------------------------------------------


def test_breakdowns_count_by_vehicle_type_and_by_camera(viewer_client, traffic):
    stats = get_stats(viewer_client)

    assert stats["by_vehicle_type"] == {**{t: 0 for t in VEHICLE_TYPES}, "car": 3, "truck": 1, "bus": 1}
    assert stats["by_camera"] == {"gate-1": 3, "gate-2": 2}


def test_breakdowns_drop_a_deleted_detection(viewer_client, staff_client, traffic):
    assert staff_client.delete(f"/api/detections/{traffic['d']['id']}/").status_code == 204

    stats = get_stats(viewer_client)

    assert nonzero(stats["by_vehicle_type"]) == {"car": 3, "truck": 1}
    assert stats["by_camera"] == {"gate-1": 3, "gate-2": 1}


@pytest.mark.parametrize(
    "params, by_type, by_camera",
    [
        pytest.param({"camera": "gate-2"}, {"car": 1, "bus": 1}, {"gate-2": 2}, id="camera"),
        pytest.param({"vehicle_type": "car"}, {"car": 3}, {"gate-1": 2, "gate-2": 1}, id="vehicle_type"),
        pytest.param({"since": "2026-11-24T00:00:00Z"}, {"car": 2, "truck": 1}, {"gate-1": 2, "gate-2": 1}, id="since"),
        pytest.param({"until": "2026-11-24T00:00:00Z"}, {"car": 1, "bus": 1}, {"gate-1": 1, "gate-2": 1}, id="until"),
        pytest.param(
            {"since": "2026-11-24T08:00:00Z", "until": "2026-11-24T09:00:00Z", "camera": "gate-1"},
            {"car": 1, "truck": 1},
            {"gate-1": 2},
            id="since, until and camera",
        ),
    ],
)
def test_breakdowns_honour_the_filters(viewer_client, traffic, params, by_type, by_camera):
    stats = get_stats(viewer_client, **params)

    assert nonzero(stats["by_vehicle_type"]) == by_type
    assert stats["by_camera"] == by_camera
    assert stats["total_vehicles"] == 5  # the legacy total is never filtered


@pytest.mark.parametrize(
    "params, recent",
    [
        pytest.param({"camera": "gate-2"}, ["c", "d"], id="camera"),
        pytest.param({"vehicle_type": "car"}, ["c", "a", "e"], id="vehicle_type"),
        pytest.param({"since": "2026-11-24T00:00:00Z"}, ["c", "b", "a"], id="since"),
        pytest.param({"until": "2026-11-24T00:00:00Z"}, ["d", "e"], id="until"),
    ],
)
def test_recent_logs_honour_the_same_filters_as_the_breakdowns(viewer_client, traffic, params, recent):
    stats = get_stats(viewer_client, **params)

    assert [log["tracking_id"] for log in stats["recent_logs"]] == recent


# --- Time series -----------------------------------------------------------------------------


def test_the_hourly_series_counts_each_hour_by_vehicle_type_zero_filled(viewer_client, traffic):
    stats = get_stats(viewer_client, bucket="hour", since="2026-11-24T07:00:00Z", until="2026-11-24T11:00:00Z")

    series = stats["series"]
    assert (series["bucket"], series["time_zone"]) == ("hour", "UTC")
    assert (series["since"], series["until"]) == ("2026-11-24T07:00:00Z", "2026-11-24T11:00:00Z")
    assert series_counts(stats) == {
        "2026-11-24T07:00:00+00:00": 0,
        "2026-11-24T08:00:00+00:00": 2,
        "2026-11-24T09:00:00+00:00": 1,
        "2026-11-24T10:00:00+00:00": 0,
    }
    by_type = {point["start"]: nonzero(point["by_vehicle_type"]) for point in series["points"]}
    assert by_type["2026-11-24T08:00:00+00:00"] == {"car": 1, "truck": 1}
    assert by_type["2026-11-24T09:00:00+00:00"] == {"car": 1}


def test_the_daily_series_counts_each_utc_day(viewer_client, traffic):
    stats = get_stats(viewer_client, bucket="day", **TWO_UTC_DAYS)

    assert series_counts(stats) == {"2026-11-23T00:00:00+00:00": 2, "2026-11-24T00:00:00+00:00": 3}


def test_a_time_zone_shifts_the_day_buckets_to_local_days(viewer_client, traffic):
    # The two local days, 00:00 to 00:00 in Istanbul.
    local_days = {"since": "2026-11-22T21:00:00Z", "until": "2026-11-24T21:00:00Z"}

    stats = get_stats(viewer_client, bucket="day", tz="Europe/Istanbul", **local_days)

    assert stats["series"]["time_zone"] == "Europe/Istanbul"
    # "d" at 22:30 UTC on the 23rd is 01:30 on the 24th in Istanbul.
    assert series_counts(stats) == {"2026-11-23T00:00:00+03:00": 1, "2026-11-24T00:00:00+03:00": 4}


@pytest.mark.parametrize(
    "params, daily_counts",
    [
        pytest.param({"camera": "gate-1"}, [1, 2], id="camera"),
        pytest.param({"vehicle_type": "bus"}, [1, 0], id="vehicle_type"),
        pytest.param({"camera": "gate-2", "vehicle_type": "car"}, [0, 1], id="camera and vehicle_type"),
    ],
)
def test_the_series_honours_the_camera_and_vehicle_type_filters(viewer_client, traffic, params, daily_counts):
    stats = get_stats(viewer_client, bucket="day", **TWO_UTC_DAYS, **params)

    assert series_counts(stats) == dict(
        zip(["2026-11-23T00:00:00+00:00", "2026-11-24T00:00:00+00:00"], daily_counts, strict=True)
    )


def test_the_default_series_is_hourly_over_the_last_24_hours(device_client, viewer_client):
    now = timezone.now()
    for tracking_id, age in (("recent", timedelta(hours=1)), ("old", timedelta(days=3))):
        body = detection_body(id=tracking_id, vehicle_img=..., time=(now - age).isoformat())
        assert device_client.post("/api/detect", body, format="json").status_code == 201

    series = get_stats(viewer_client)["series"]

    assert series["bucket"] == "hour"
    assert len(series["points"]) in (24, 25)  # 25 when the window starts mid-hour
    assert sum(point["count"] for point in series["points"]) == 1


# --- Bad parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, field",
    [
        pytest.param({"bucket": "week"}, "bucket", id="bucket=week"),
        pytest.param({"tz": "Mars/Base"}, "tz", id="tz=Mars/Base"),
        pytest.param(
            {"since": "2026-11-24T10:00:00Z", "until": "2026-11-24T09:00:00Z"}, "since", id="since after until"
        ),
        pytest.param({"since": "last tuesday"}, "since", id="since not a time"),
        pytest.param({"vehicle_type": "spaceship"}, "vehicle_type", id="unknown vehicle_type"),
        pytest.param({"recent": "many"}, "recent", id="recent not a number"),
        pytest.param({"since": "2000-01-01T00:00:00Z", "bucket": "hour"}, "since", id="window too large"),
    ],
)
def test_bad_stats_parameters_answer_400_json(viewer_client, params, field):
    response = viewer_client.get("/api/stats", params)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field
    assert body["error"] and body["detail"]


# --- Counters -----------------------------------------------------------------------------


def test_counters_equal_a_full_count_after_creations_and_deletions(device_client, viewer_client, staff_client, traffic):
    assert_counters_match_the_table()
    assert staff_client.delete(f"/api/delete/{traffic['a']['id']}").status_code == 200
    assert staff_client.delete(f"/api/detections/{traffic['d']['id']}/").status_code == 204
    Detection.objects.get(pk=traffic["e"]["id"]).delete()  # as the admin or a shell would
    more = detection_body(id="f", camera="yard", vehicle_type="van", time="2026-11-24T09:59:59Z")
    assert device_client.post("/api/detections/", more, format="json").status_code == 201

    assert_counters_match_the_table()
    stats = get_stats(viewer_client)
    assert stats["total_vehicles"] == Detection.objects.count() == 3
    assert stats["by_camera"] == {"gate-1": 1, "gate-2": 1, "yard": 1}


def test_rebuild_restores_counters_that_were_tampered_with(viewer_client, traffic):
    seq_before = counters.current_position().seq
    CameraTypeTotal.objects.update(count=42)
    HourlyCount.objects.filter(vehicle_type="car").delete()
    FeedState.objects.update(detection_count=999)

    position = counters.rebuild()

    assert position == counters.FeedPosition(seq=seq_before, count=5)
    assert_counters_match_the_table()
    assert get_stats(viewer_client)["by_camera"] == {"gate-1": 3, "gate-2": 2}


def test_the_rebuild_counters_command_recomputes_them_from_the_table(traffic):
    CameraTypeTotal.objects.update(count=7)
    HourlyCount.objects.all().delete()
    FeedState.objects.update(detection_count=0)
    out = io.StringIO()

    call_command("rebuild_counters", stdout=out)

    assert_counters_match_the_table()
    assert "counters rebuilt: 5 detections" in out.getvalue()


def test_counters_equal_a_full_count_after_concurrent_changes_through_every_path(
    transactional_db, _media_root, credentials, simulated_detection
):
    """Real concurrent transactions, at once, on a real server and in this process:
    single POSTs (grouped), batches, deletes through the API, the admin's bulk
    delete and a retention purge."""
    from admin_pages import confirm_bulk_delete
    from django.contrib.auth.models import User
    from django.test import Client

    staff = User.objects.get(username="staff")
    staff.is_superuser = True
    staff.save()
    with ServerProcess(_media_root, credentials) as server:
        cameras = ["gate-1", "gate-2", "yard"]
        long_ago = (timezone.now() - timedelta(days=10)).isoformat()
        expired = [simulated_detection(camera=cameras[n % 3], time=long_ago, id=f"old-{n}") for n in range(10)]
        reviewed = [simulated_detection(camera=cameras[n % 3]) for n in range(10)]
        singles = [[simulated_detection(camera=cameras[n % 3]) for n in range(8)] for _ in range(4)]
        batches = [[simulated_detection(camera=cameras[n % 3]) for n in range(10)] for _ in range(2)]
        with server.device() as http:
            for body in expired:
                assert http.post("/api/detect", json=body).status_code == 201
            wrong = [http.post("/api/detect", json=body).json()["id"] for body in reviewed]

        def post_singles(bodies):
            with server.device() as http:
                return [http.post("/api/detect", json=body).status_code for body in bodies]

        def post_batch(bodies):
            with server.device() as http:
                return http.post("/api/detections/batch/", json={"detections": bodies}).json()["created"]

        def api_delete(ids):
            with server.staff() as http:
                return [http.delete(f"/api/detections/{detection_id}/").status_code for detection_id in ids]

        def admin_bulk_delete(ids):
            admin = Client()
            admin.force_login(staff)
            return confirm_bulk_delete(admin, ids).status_code

        def purge():
            out = io.StringIO()
            call_command("purge_detections", "--older-than", "5", "--batch-size", "3", stdout=out, stderr=out)
            return out.getvalue()

        with ThreadPoolExecutor(max_workers=8) as pool:
            posted = [pool.submit(post_singles, bodies) for bodies in singles]
            batched = [pool.submit(post_batch, bodies) for bodies in batches]
            deleted = pool.submit(api_delete, wrong[:5])
            bulk_deleted = pool.submit(admin_bulk_delete, wrong[5:])
            purged = pool.submit(purge)
            assert [status for job in posted for status in job.result()] == [201] * 32
            assert [job.result() for job in batched] == [10, 10]
            assert deleted.result() == [204] * 5
            assert bulk_deleted.result() == 302
            assert "Deleting 10 detection(s)" in purged.result()

    assert Detection.objects.count() == 32 + 20
    assert_counters_match_the_table()
    # One event per change, numbered without a gap or a repeat.
    changes = 10 + 10 + 32 + 20 + 10 + 10
    assert sorted(Event.objects.values_list("seq", flat=True)) == list(range(1, changes + 1))
