"""Deleting in the admin, one or many: it asks first, removes the rows and their
files, tells every socket like any other deletion, and says how many went."""

import pytest
from admin_pages import CHANGELIST, confirm_bulk_delete, page_messages
from conftest import store_detection, stored_files
from django.contrib.auth.models import Permission
from django.urls import reverse

from detections.core import counters
from detections.models import Detection

pytestmark = pytest.mark.django_db


def files_of(*detections: Detection) -> list:
    return sorted(name for d in detections for name in (d.image.path, d.thumbnail.path))


def test_deleting_one_detection_removes_its_row_and_files_and_publishes_a_deletion(
    admin_client, django_capture_on_commit_callbacks, feed_listener, _media_root
):
    doomed, kept = store_detection("trk-1"), store_detection("trk-2")
    doomed_id = doomed.pk
    before = counters.current_position()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:detections_detection_delete", args=[doomed_id]), {"post": "yes"})

    assert response.status_code == 302
    assert list(Detection.objects.values_list("pk", flat=True)) == [kept.pk]
    assert [str(path) for path in stored_files(_media_root)] == files_of(kept)
    assert feed_listener.receive() == {
        "type": "deletion",
        "seq": before.seq + 1,
        "deleted_id": doomed_id,
        "count": before.count - 1,
        "camera": "gate-1",
        "vehicle_type": "car",
    }


def test_the_bulk_delete_asks_for_confirmation_and_deletes_nothing_until_confirmed(admin_client, _media_root):
    doomed = [store_detection(f"trk-{n}") for n in range(2)]
    files_before = stored_files(_media_root)

    response = admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [d.pk for d in doomed]})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Are you sure you want to delete the selected detections?" in page
    assert '<input type="hidden" name="post" value="yes">' in page
    assert Detection.objects.count() == 2
    assert stored_files(_media_root) == files_before


def test_the_confirmed_bulk_delete_removes_every_row_and_file_tells_every_client_and_says_how_many_went(
    admin_client, django_capture_on_commit_callbacks, feed_listener, _media_root
):
    doomed = [store_detection(f"trk-{n}") for n in range(3)]
    kept = store_detection("trk-kept")
    doomed_ids = sorted(d.pk for d in doomed)
    before = counters.current_position()

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_bulk_delete(admin_client, doomed_ids, follow=True)

    assert response.redirect_chain[0][1] == 302
    assert page_messages(response) == [
        "Deleted 3 detections; 3 deletion events were published to every connected client."
    ]
    assert list(Detection.objects.values_list("pk", flat=True)) == [kept.pk]
    assert [str(path) for path in stored_files(_media_root)] == files_of(kept)
    messages = [feed_listener.receive() for _ in doomed]
    assert {m["type"] for m in messages} == {"deletion"}
    assert sorted(m["deleted_id"] for m in messages) == doomed_ids
    assert [m["seq"] for m in messages] == [before.seq + n for n in (1, 2, 3)]
    assert [m["count"] for m in messages] == [before.count - n for n in (1, 2, 3)]
    feed_listener.assert_nothing_else()


def test_the_bulk_delete_of_one_detection_says_one(admin_client, django_capture_on_commit_callbacks):
    doomed = store_detection()

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_bulk_delete(admin_client, [doomed.pk], follow=True)

    assert page_messages(response) == ["Deleted 1 detection; 1 deletion event was published to every connected client."]


def test_staff_without_the_delete_permission_are_not_offered_the_bulk_delete(client, django_user_model):
    stored = store_detection()
    reviewer = django_user_model.objects.create_user("reviewer", password="pw-reviewer-1", is_staff=True)
    reviewer.user_permissions.add(Permission.objects.get(codename="view_detection"))
    client.force_login(reviewer)

    assert 'value="delete_selected"' not in client.get(CHANGELIST).content.decode()
    response = confirm_bulk_delete(client, [stored.pk], follow=True)

    assert Detection.objects.filter(pk=stored.pk).exists()
    assert page_messages(response) == ["No action selected."]
