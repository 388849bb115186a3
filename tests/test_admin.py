"""Staff review detections in the Django admin and delete wrong ones: the pages
show what a camera saw, filter and search it, and deleting (one or many) removes
the files and tells every socket, like any other deletion."""

import pytest
from admin_pages import CHANGELIST, changelist_rows, confirm_bulk_delete, listed_ids, text
from conftest import MOMENT, store_detection, stored_files
from django.urls import reverse
from django.utils import formats, timezone

from detections.core import counters
from detections.models import Detection

pytestmark = pytest.mark.django_db


def files_of(*detections: Detection) -> list:
    return sorted(name for d in detections for name in (d.image.path, d.thumbnail.path))


def test_the_changelist_shows_each_detections_thumbnail_type_camera_and_time(admin_client):
    detection = store_detection(plate="34ABC123")

    row = changelist_rows(admin_client.get(CHANGELIST))[detection.pk]

    assert f'<img src="{detection.thumbnail.url}"' in row["thumbnail_preview"]
    assert text(row["vehicle_type"]) == "Car"
    assert text(row["camera"]) == "gate-1"
    assert text(row["detected_at"]) == formats.localize(timezone.localtime(MOMENT))
    assert text(row["tracking_id"]) == "trk-0042"
    assert text(row["plate"]) == "34ABC123"


def test_the_changelist_filters_by_vehicle_type(admin_client):
    car, truck = store_detection("trk-1", vehicle_type="car"), store_detection("trk-2", vehicle_type="truck")

    assert listed_ids(admin_client, vehicle_type__exact="truck") == {truck.pk}
    assert listed_ids(admin_client, vehicle_type__exact="car") == {car.pk}


def test_the_changelist_filters_by_camera(admin_client):
    gate, yard = store_detection("trk-1", camera="gate-1"), store_detection("trk-2", camera="yard")

    assert listed_ids(admin_client, camera__id__exact=yard.camera_id) == {yard.pk}
    assert listed_ids(admin_client, camera__id__exact=gate.camera_id) == {gate.pk}


@pytest.mark.parametrize(
    "query",
    [
        {"detected_at__gte": "2026-11-24 00:00:00+00:00", "detected_at__lt": "2026-11-25 00:00:00+00:00"},
        {"detected_at__year": "2026", "detected_at__month": "11", "detected_at__day": "24"},
    ],
    ids=["date-list-filter", "date-hierarchy"],
)
def test_the_changelist_filters_by_date(admin_client, query):
    that_day = store_detection("trk-1", detected_at=MOMENT)
    store_detection("trk-2", detected_at=MOMENT.replace(day=23, hour=23, minute=59))
    store_detection("trk-3", detected_at=MOMENT.replace(day=25, hour=0, minute=0))

    assert listed_ids(admin_client, **query) == {that_day.pk}


def test_the_changelist_searches_by_tracking_id(admin_client):
    alpha = store_detection("trk-alpha", plate="34ABC123")
    store_detection("trk-beta", plate="06XYZ999")

    assert listed_ids(admin_client, q="alpha") == {alpha.pk}


def test_the_changelist_searches_by_plate(admin_client):
    store_detection("trk-alpha", plate="34ABC123")
    beta = store_detection("trk-beta", plate="06XYZ999")

    assert listed_ids(admin_client, q="xyz9") == {beta.pk}


def test_the_changelist_renders_html_in_plate_and_tracking_id_escaped(admin_client):
    detection = store_detection("<b>trk</b>", plate="<script>alert(1)</script>")

    response = admin_client.get(CHANGELIST)
    row = changelist_rows(response)[detection.pk]

    assert b"<script>alert(1)</script>" not in response.content
    assert b"<b>trk</b>" not in response.content
    assert row["plate"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "&lt;b&gt;trk&lt;/b&gt;" in row["tracking_id"]


def test_the_detail_page_shows_the_snapshot(admin_client):
    detection = store_detection()

    response = admin_client.get(reverse("admin:detections_detection_change", args=[detection.pk]))

    assert response.status_code == 200
    assert f'<img src="{detection.image.url}" alt="Snapshot of detection {detection.pk}"' in response.content.decode()


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


def test_the_bulk_delete_action_removes_every_row_and_file_and_publishes_one_deletion_per_row(
    admin_client, django_capture_on_commit_callbacks, feed_listener, _media_root
):
    doomed = [store_detection(f"trk-{n}") for n in range(3)]
    kept = store_detection("trk-kept")
    doomed_ids = sorted(d.pk for d in doomed)
    before = counters.current_position()

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_bulk_delete(admin_client, doomed_ids)

    assert response.status_code == 302
    assert list(Detection.objects.values_list("pk", flat=True)) == [kept.pk]
    assert [str(path) for path in stored_files(_media_root)] == files_of(kept)
    messages = [feed_listener.receive() for _ in doomed]
    assert {m["type"] for m in messages} == {"deletion"}
    assert sorted(m["deleted_id"] for m in messages) == doomed_ids
    assert [m["seq"] for m in messages] == [before.seq + n for n in (1, 2, 3)]
    assert [m["count"] for m in messages] == [before.count - n for n in (1, 2, 3)]
    feed_listener.assert_nothing_else()
