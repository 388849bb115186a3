"""Deleting detections (protocol.md, Deletion) and reading them back through
GET /api/detections/ (Statistics and history)."""

import pytest
from conftest import api_client, detection_body, stored_files

from detections.core import counters
from detections.models import Detection, Event

pytestmark = pytest.mark.django_db

# (tracking id, camera, vehicle type, time, plate)
TRAFFIC = [
    ("trk-1", "gate-1", "car", "2026-11-24T08:00:00Z", "34ABC123"),
    ("trk-2", "gate-1", "truck", "2026-11-24T08:30:00Z", "06XYZ77"),
    ("trk-3", "gate-2", "car", "2026-11-24T09:00:00Z", "35KLM900"),
    ("trk-4", "gate-2", "bus", "2026-11-24T09:30:00Z", "34ABC123"),
    ("trk-1", "gate-2", "van", "2026-11-24T10:00:00Z", ""),
]

# The legacy path answers 200 with the new count; the REST resource 204.
DELETE_PATHS = ["/api/delete/{id}", "/api/detections/{id}/"]


# --- Helpers -----------------------------------------------------------------------------


def create(device_client, **overrides) -> dict:
    response = device_client.post("/api/detect", detection_body(**overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def traffic(device_client) -> list[dict]:
    """TRAFFIC posted through the API, as answered, in posting order (oldest first)."""
    return [
        create(device_client, id=tracking_id, camera=camera, vehicle_type=vehicle_type, time=time, plate=plate)
        for tracking_id, camera, vehicle_type, time, plate in TRAFFIC
    ]


def delete(staff_client, path: str, pk: int):
    """Delete through one of DELETE_PATHS, expecting the success status of that path."""
    response = staff_client.delete(path.format(id=pk))
    assert response.status_code == (200 if path.startswith("/api/delete/") else 204), response.content
    return response


def list_ids(viewer_client, **params) -> list[int]:
    response = viewer_client.get("/api/detections/", params)
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def files_of(media_root, detection: dict) -> list:
    """The snapshot and thumbnail files of a detection as the API answered it."""
    return [media_root / detection[key].removeprefix("/media/") for key in ("image_url", "thumbnail_url")]


def newest_first(detections: list[dict]) -> list[int]:
    return [d["id"] for d in sorted(detections, key=lambda d: (d["time"], d["id"]), reverse=True)]


def assert_not_found_json(response):
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "not_found"
    assert isinstance(body["detail"], str) and body["detail"]


# --- Deleting -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/delete/{id}", "/api/delete/{id}/"])
def test_the_legacy_delete_answers_200_with_a_message_and_the_new_count(staff_client, traffic, path):
    response = staff_client.delete(path.format(id=traffic[0]["id"]))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"message", "new_count"}
    assert isinstance(body["message"], str) and body["message"]
    assert body["new_count"] == len(TRAFFIC) - 1 == Detection.objects.count()
    assert not Detection.objects.filter(pk=traffic[0]["id"]).exists()


def test_the_rest_delete_answers_204_with_no_body(staff_client, traffic):
    response = staff_client.delete(f"/api/detections/{traffic[0]['id']}/")

    assert response.status_code == 204, response.content
    assert response.content == b""
    assert not Detection.objects.filter(pk=traffic[0]["id"]).exists()
    assert counters.current_position().count == len(TRAFFIC) - 1


@pytest.mark.parametrize("who, status", [("nobody", 401), ("viewer", 403), ("device", 403)])
@pytest.mark.parametrize("path", DELETE_PATHS)
def test_only_staff_may_delete(credentials, traffic, path, who, status):
    secret = {"nobody": None, "viewer": credentials.viewer, "device": credentials.device}[who]

    response = api_client(secret).delete(path.format(id=traffic[0]["id"]))

    assert response.status_code == status, response.content
    assert response.json()["error"] and response.json()["detail"]
    assert Detection.objects.count() == len(TRAFFIC)


@pytest.mark.parametrize("path", DELETE_PATHS)
def test_deleting_an_unknown_id_answers_404_json_and_deletes_nothing(staff_client, traffic, path):
    response = staff_client.delete(path.format(id=999_999_999))

    assert_not_found_json(response)
    assert Detection.objects.count() == len(TRAFFIC)


@pytest.mark.parametrize("path", DELETE_PATHS)
def test_deleting_a_non_numeric_id_answers_404_json(staff_client, traffic, path):
    response = staff_client.delete(path.format(id="abc"))

    assert_not_found_json(response)
    assert Detection.objects.count() == len(TRAFFIC)


@pytest.mark.parametrize("path", DELETE_PATHS)
def test_deleting_twice_answers_404_the_second_time(staff_client, traffic, path):
    delete(staff_client, path, traffic[0]["id"])

    assert_not_found_json(staff_client.delete(path.format(id=traffic[0]["id"])))
    assert counters.current_position().count == len(TRAFFIC) - 1


@pytest.mark.parametrize("path", DELETE_PATHS)
def test_the_image_files_are_removed_only_after_commit(
    device_client, staff_client, _media_root, path, django_capture_on_commit_callbacks
):
    kept = create(device_client, id="trk-kept")
    doomed = create(device_client, id="trk-doomed")
    doomed_files = files_of(_media_root, doomed)

    with django_capture_on_commit_callbacks() as callbacks:
        delete(staff_client, path, doomed["id"])
    assert all(f.exists() for f in doomed_files)  # a rollback would still need them

    for callback in callbacks:
        callback()
    assert not any(f.exists() for f in doomed_files)
    assert stored_files(_media_root) == sorted(files_of(_media_root, kept))


@pytest.mark.parametrize("path", DELETE_PATHS)
def test_a_deletion_event_with_seq_and_count_is_published(
    staff_client, traffic, path, feed_listener, django_capture_on_commit_callbacks
):
    victim = traffic[1]
    seq_before = counters.current_position().seq

    with django_capture_on_commit_callbacks(execute=True):
        delete(staff_client, path, victim["id"])

    message = feed_listener.receive()
    assert message == {
        "type": "deletion",
        "seq": seq_before + 1,
        "deleted_id": victim["id"],
        "count": len(TRAFFIC) - 1,
        "camera": victim["camera"],
        "vehicle_type": victim["vehicle_type"],
    }
    stored = Event.objects.get(seq=seq_before + 1)
    assert (stored.kind, stored.detection_id) == ("deletion", victim["id"])


# --- Listing and reading -----------------------------------------------------------------------


def test_the_list_is_newest_first_with_every_field(viewer_client, traffic):
    response = viewer_client.get("/api/detections/")

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [item["id"] for item in results] == newest_first(traffic)
    assert results[0] == traffic[-1]


@pytest.mark.parametrize(
    "params, expected",
    [
        pytest.param({"camera": "gate-1"}, ["trk-2", "trk-1"], id="camera"),
        pytest.param({"vehicle_type": "car"}, ["trk-3", "trk-1"], id="vehicle_type"),
        pytest.param({"since": "2026-11-24T09:00:00Z"}, ["trk-1", "trk-4", "trk-3"], id="since inclusive"),
        pytest.param({"until": "2026-11-24T09:00:00Z"}, ["trk-2", "trk-1"], id="until exclusive"),
        pytest.param(
            {"since": "2026-11-24T08:15:00Z", "until": "2026-11-24T09:45:00Z"}, ["trk-4", "trk-3", "trk-2"], id="window"
        ),
        pytest.param({"tracking_id": "trk-1"}, ["trk-1", "trk-1"], id="tracking_id"),
        pytest.param({"plate": "34ABC123"}, ["trk-4", "trk-1"], id="plate"),
        pytest.param({"camera": "gate-2", "vehicle_type": "car"}, ["trk-3"], id="camera and vehicle_type"),
        pytest.param({"camera": "gate-9"}, [], id="unknown camera"),
    ],
)
def test_the_list_filters(viewer_client, traffic, params, expected):
    response = viewer_client.get("/api/detections/", params)

    assert response.status_code == 200, response.content
    assert [item["tracking_id"] for item in response.json()["results"]] == expected


def test_an_invalid_filter_value_answers_400_json(viewer_client, traffic):
    response = viewer_client.get("/api/detections/", {"vehicle_type": "spaceship"})

    assert response.status_code == 400, response.content
    assert response.json()["error"] and response.json()["detail"]


def test_cursor_pages_walk_every_detection_once_newest_first(device_client, viewer_client, traffic):
    # Two more at the same instant as another: ties are where offset-free paging slips.
    ties = [create(device_client, id=f"tie-{n}", camera="yard", time="2026-11-24T09:00:00Z") for n in range(2)]
    pages, url = [], "/api/detections/?page_size=2"
    while url:
        response = viewer_client.get(url)
        assert response.status_code == 200, response.content
        pages.append([item["id"] for item in response.json()["results"]])
        url = response.json()["next"]

    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [i for page in pages for i in page] == newest_first(traffic + ties)


def test_the_previous_link_leads_back_to_the_first_page(viewer_client, traffic):
    first = viewer_client.get("/api/detections/", {"page_size": 2}).json()
    assert first["previous"] is None

    second = viewer_client.get(first["next"]).json()
    back = viewer_client.get(second["previous"]).json()

    assert [item["id"] for item in back["results"]] == [item["id"] for item in first["results"]]


def test_retrieving_one_detection_answers_it(viewer_client, traffic):
    response = viewer_client.get(f"/api/detections/{traffic[2]['id']}/")

    assert response.status_code == 200, response.content
    assert response.json() == traffic[2]


@pytest.mark.parametrize("pk", [999_999_999, "abc"])
def test_retrieving_an_unknown_detection_answers_404_json(viewer_client, traffic, pk):
    assert_not_found_json(viewer_client.get(f"/api/detections/{pk}/"))


def test_a_deleted_detection_is_gone_from_the_list_and_answers_404(viewer_client, staff_client, traffic):
    victim = traffic[0]["id"]
    delete(staff_client, DELETE_PATHS[0], victim)

    assert victim not in list_ids(viewer_client)
    assert_not_found_json(viewer_client.get(f"/api/detections/{victim}/"))
