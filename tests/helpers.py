"""What several test files do the same way: post detections, list them, check
the counters against the table."""

from datetime import UTC

from conftest import detection_body
from django.db.models import Count
from django.db.models.functions import TruncHour

from detections.core import counters
from detections.models import CameraTypeTotal, Detection, HourlyCount


def counter_state():
    """Everything the counters hold, to compare before and after."""
    return (
        counters.current_position(),
        sorted(CameraTypeTotal.objects.values_list("camera__name", "vehicle_type", "count")),
        sorted(HourlyCount.objects.values_list("camera__name", "vehicle_type", "hour", "count")),
    )


def assert_counters_match_the_table():
    """Every counter equals a GROUP BY over what the detections table holds."""
    assert counters.current_position().count == Detection.objects.count()
    totals = {
        (t["camera_id"], t["vehicle_type"]): t["n"]
        for t in Detection.objects.values("camera_id", "vehicle_type").annotate(n=Count("id"))
    }
    assert {(t.camera_id, t.vehicle_type): t.count for t in CameraTypeTotal.objects.exclude(count=0)} == totals
    hourly = {
        (h["camera_id"], h["vehicle_type"], h["hour"]): h["n"]
        for h in Detection.objects.annotate(hour=TruncHour("detected_at", tzinfo=UTC))
        .values("camera_id", "vehicle_type", "hour")
        .annotate(n=Count("id"))
    }
    assert {(h.camera_id, h.vehicle_type, h.hour): h.count for h in HourlyCount.objects.exclude(count=0)} == hourly


def post_detection(device_client, **overrides) -> dict:
    """POST a detection through the legacy path; the stored record it answers."""
    response = device_client.post("/api/detect", detection_body(**overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def list_ids(viewer_client, **params) -> list[int]:
    response = viewer_client.get("/api/detections/", params)
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def newest_first(detections: list[dict]) -> list[int]:
    return [d["id"] for d in sorted(detections, key=lambda d: (d["time"], d["id"]), reverse=True)]


def assert_not_found_json(response):
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "not_found"
    assert isinstance(body["detail"], str) and body["detail"]
