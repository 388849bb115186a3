"""Deleting detections (protocol.md, Deletion): the files go after commit, and
every client is told."""

import pytest
from conftest import TRAFFIC, api_client, stored_files
from helpers import assert_not_found_json, list_ids, post_detection

from detections.core import counters
from detections.models import Detection, Event

pytestmark = pytest.mark.django_db

# The legacy path answers 200 with the new count; the REST resource 204.
DELETE_PATHS = ["/api/delete/{id}", "/api/detections/{id}/"]


# --- Helpers -----------------------------------------------------------------------------


def delete(staff_client, path: str, pk: int):
    """Delete through one of DELETE_PATHS, expecting the success status of that path."""
    response = staff_client.delete(path.format(id=pk))
    assert response.status_code == (200 if path.startswith("/api/delete/") else 204), response.content
    return response


def files_of(media_root, detection: dict) -> list:
    """The snapshot and thumbnail files of a detection as the API answered it."""
    return [media_root / detection[key].removeprefix("/media/") for key in ("image_url", "thumbnail_url")]


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
    kept = post_detection(device_client, id="trk-kept")
    doomed = post_detection(device_client, id="trk-doomed")
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


def test_a_deleted_detection_is_gone_from_the_list_and_answers_404(viewer_client, staff_client, traffic):
    victim = traffic[0]["id"]
    delete(staff_client, DELETE_PATHS[0], victim)

    assert victim not in list_ids(viewer_client)
    assert_not_found_json(viewer_client.get(f"/api/detections/{victim}/"))
