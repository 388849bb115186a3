"""Review in the admin, through the real admin pages: the list with thumbnails,
its filters (camera, type, date range, confidence) and search, the snapshot with
its bounding box, the bulk delete that asks first and then says how many went
and that every client was told, the CSV export action, and the camera list
(key status, last seen, detections today from the counters)."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from admin_pages import CHANGELIST, changelist_rows, confirm_bulk_delete, listed_ids, text
from conftest import MOMENT, store_detection, stored_files
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

from detections.core import counters
from detections.core.device_keys import issue_device_key, revoke_device_keys
from detections.models import Camera, Detection, DeviceKey, HourlyCount

pytestmark = pytest.mark.django_db

CAMERAS = reverse("admin:detections_camera_changelist")


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- The list ------------------------------------------------------------------------


def test_the_list_shows_a_thumbnail_for_a_detection_with_a_snapshot_and_a_dash_without(admin_client):
    pictured, bare = store_detection("trk-1"), store_detection("trk-2", with_image=False)

    rows = changelist_rows(admin_client.get(CHANGELIST))

    assert f'<img src="{pictured.thumbnail.url}"' in rows[pictured.pk]["thumbnail_preview"]
    assert text(rows[bare.pk]["thumbnail_preview"]) == "—"


def test_the_list_filters_by_camera(admin_client):
    gate, yard = store_detection("trk-1", camera="gate-1"), store_detection("trk-2", camera="yard")

    assert listed_ids(admin_client, camera__id__exact=yard.camera_id) == {yard.pk}
    assert listed_ids(admin_client, camera__id__exact=gate.camera_id) == {gate.pk}


def test_the_list_filters_by_vehicle_type(admin_client):
    car, bus = store_detection("trk-1", vehicle_type="car"), store_detection("trk-2", vehicle_type="bus")

    assert listed_ids(admin_client, vehicle_type__exact="bus") == {bus.pk}
    assert listed_ids(admin_client, vehicle_type__exact="car") == {car.pk}


def test_the_date_range_filter_keeps_the_first_and_the_last_day_whole(admin_client):
    before = store_detection("trk-0", detected_at=datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC))
    first = store_detection("trk-1", detected_at=datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    last = store_detection("trk-2", detected_at=datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=UTC))
    after = store_detection("trk-3", detected_at=datetime(2026, 11, 25, 0, 0, tzinfo=UTC))

    assert listed_ids(admin_client, detected_from="2026-11-22", detected_to="2026-11-24") == {first.pk, last.pk}
    assert listed_ids(admin_client, detected_from="2026-11-24") == {last.pk, after.pk}
    assert listed_ids(admin_client, detected_to="2026-11-21") == {before.pk}


def test_the_date_range_filter_counts_days_in_the_admins_time_zone(admin_user, rf):
    early = store_detection("trk-1", detected_at=datetime(2026, 11, 23, 15, 30, tzinfo=UTC))  # the 24th in Tokyo
    store_detection("trk-2", detected_at=datetime(2026, 11, 23, 14, 30, tzinfo=UTC))  # the 23rd in Tokyo
    request = rf.get(CHANGELIST, {"detected_from": "2026-11-24", "detected_to": "2026-11-24"})
    request.user = admin_user
    model_admin = admin.site._registry[Detection]

    # The admin's ChangeList itself (not the rendered page: the date hierarchy
    # asks MariaDB to convert time zones, which needs its zone tables loaded).
    with timezone.override(ZoneInfo("Asia/Tokyo")):  # UTC+9: the 24th starts at 15:00 UTC on the 23rd
        changelist = model_admin.get_changelist_instance(request)

    assert {d.pk for d in changelist.queryset} == {early.pk}


def test_the_date_range_filter_is_a_form_with_two_dates_that_keeps_the_other_filters(admin_client):
    store_detection()

    page = admin_client.get(f"{CHANGELIST}?{urlencode({'vehicle_type__exact': 'car', 'q': 'trk'})}").content.decode()

    form = re.search(r'<form method="get" class="date-range-filter".*?</form>', page, re.DOTALL).group(0)
    assert '<input type="date" id="detected_from" name="detected_from"' in form
    assert '<input type="date" id="detected_to" name="detected_to"' in form
    assert '<input type="hidden" name="vehicle_type__exact" value="car">' in form
    assert '<input type="hidden" name="q" value="trk">' in form


def test_a_date_range_bound_that_is_not_a_date_is_ignored_with_a_warning(admin_client):
    stored = store_detection()

    response = admin_client.get(f"{CHANGELIST}?detected_from=yesterday")

    assert set(changelist_rows(response)) == {stored.pk}
    assert any("“yesterday” is not a date" in message for message in page_messages(response))


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [("low", {"c0.3"}), ("medium", {"c0.5", "c0.79"}), ("high", {"c0.8", "c1.0"}), ("none", {"none"})],
)
def test_the_list_filters_by_confidence_bucket(admin_client, bucket, expected):
    ids = {store_detection("none").pk: "none"}
    for confidence in (0.3, 0.5, 0.79, 0.8, 1.0):
        ids[store_detection(f"c{confidence}", confidence=confidence).pk] = f"c{confidence}"

    assert {ids[pk] for pk in listed_ids(admin_client, confidence=bucket)} == expected


def test_the_list_searches_by_tracking_id_and_by_plate(admin_client):
    alpha = store_detection("trk-alpha", plate="34ABC123")
    beta = store_detection("trk-beta", plate="06XYZ999")

    assert listed_ids(admin_client, q="alpha") == {alpha.pk}
    assert listed_ids(admin_client, q="XYZ9") == {beta.pk}
    assert listed_ids(admin_client, q="trk-") == {alpha.pk, beta.pk}


def test_the_list_asks_for_no_facet_counts(admin_client):
    store_detection()

    response = admin_client.get(f"{CHANGELIST}?_facets=True")

    assert response.status_code == 200
    assert "Show counts" not in response.content.decode()


# --- The detail page --------------------------------------------------------------------------


def detail_page(admin_client, detection) -> str:
    response = admin_client.get(reverse("admin:detections_detection_change", args=[detection.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_detail_page_draws_the_bounding_box_over_the_snapshot_in_image_pixels(admin_client):
    detection = store_detection(size=(640, 480), bbox=[412, 220, 160, 96], confidence=0.91)

    page = detail_page(admin_client, detection)

    frame = re.search(
        r'<div style="position:relative;display:inline-block;max-width:100%">(.*?)</div>', page, re.DOTALL
    ).group(1)
    # The image, then an SVG laid over all of it, whose coordinates are the
    # image's own 640x480 pixels: the box scales with the picture.
    assert frame.index(f'<img src="{detection.image.url}" alt="Snapshot of detection {detection.pk}"') < frame.index(
        "<svg"
    )
    svg = re.search(r"<svg[^>]*>", frame).group(0)
    assert 'viewBox="0 0 640 480"' in svg
    assert 'preserveAspectRatio="none"' in svg
    assert "position:absolute;left:0;top:0;width:100%;height:100%" in svg
    rect = re.search(r"<rect [^>]*/>", frame).group(0)
    assert 'x="412" y="220" width="160" height="96"' in rect
    assert 'fill="none"' in rect
    assert "Bounding box x=412, y=220, 160×96 px, on the 640×480 snapshot." in page


def test_the_detail_page_draws_no_box_when_the_detection_has_none(admin_client):
    detection = store_detection(size=(640, 480), bbox=None)

    page = detail_page(admin_client, detection)

    assert f'<img src="{detection.image.url}" alt="Snapshot of detection {detection.pk}"' in page
    assert "<svg" not in page.split('class="snapshot"')[1].split("</div>")[0]
    assert "Bounding box" not in page


def test_the_detail_page_says_so_when_no_snapshot_was_sent(admin_client):
    detection = store_detection(with_image=False, bbox=[1, 2, 3, 4])

    assert "No snapshot was sent with this detection." in detail_page(admin_client, detection)


# --- Bulk delete ---------------------------------------------------------------------------------


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


def test_the_confirmed_bulk_delete_reports_how_many_went_and_that_every_client_was_told(
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
    assert [str(p) for p in stored_files(_media_root)] == sorted([kept.image.path, kept.thumbnail.path])
    told = [feed_listener.receive() for _ in doomed]
    assert sorted(m["deleted_id"] for m in told) == doomed_ids
    assert {m["type"] for m in told} == {"deletion"}
    assert counters.current_position().count == before.count - 3


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


# --- Export action --------------------------------------------------------------------------------


def test_the_export_action_downloads_the_selected_detections_as_csv(admin_client):
    chosen = [
        store_detection("trk-1", plate="=1+1"),
        store_detection("trk-2", detected_at=MOMENT + timedelta(seconds=1)),
    ]
    store_detection("trk-3")

    response = admin_client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [d.pk for d in chosen]})

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="detections-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["tracking_id"] for row in rows] == ["trk-1", "trk-2"]
    assert rows[0]["plate"] == "'=1+1"


# --- Cameras -------------------------------------------------------------------------------------


def test_the_camera_list_shows_active_keys_last_seen_and_detections_today(admin_client):
    gate, yard = Camera.objects.create(name="gate-1"), Camera.objects.create(name="yard")
    issue_device_key(cameras=[gate], label="unit a")
    issue_device_key(cameras=[gate], label="unit b")
    yard_key, _ = issue_device_key(cameras=[yard], label="old unit")
    revoke_device_keys(DeviceKey.objects.filter(pk=yard_key.pk))
    now = timezone.now()
    store_detection("trk-1", camera="gate-1", detected_at=now - timedelta(minutes=1))
    store_detection("trk-2", camera="gate-1", detected_at=now - timedelta(minutes=2), vehicle_type="bus")
    store_detection("trk-3", camera="gate-1", detected_at=now - timedelta(days=2))  # not today
    gate.refresh_from_db()

    with CaptureQueriesContext(connection) as queries:
        rows = changelist_rows(admin_client.get(CAMERAS))

    assert text(rows[gate.pk]["active_keys"]) == "2"
    assert text(rows[yard.pk]["active_keys"]) == "0"
    assert text(rows[gate.pk]["last_seen_at"]) == formats.localize(timezone.localtime(gate.last_seen_at))
    assert text(rows[yard.pk]["last_seen_at"]) == "-"
    assert text(rows[gate.pk]["detections_today"]) == "2"
    assert text(rows[yard.pk]["detections_today"]) == "0"
    # From the hourly counters: the page never counts the detections table.
    assert not [q["sql"] for q in queries.captured_queries if "detections_detection`" in q["sql"]]


def test_detections_today_follows_the_hourly_counters(admin_client):
    gate = Camera.objects.create(name="gate-1")
    store_detection("trk-1", camera="gate-1", detected_at=timezone.now())
    HourlyCount.objects.filter(camera=gate).update(count=41)  # what the counters say is what is shown

    rows = changelist_rows(admin_client.get(CAMERAS))

    assert text(rows[gate.pk]["detections_today"]) == "41"
