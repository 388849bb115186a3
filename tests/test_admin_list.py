"""The admin's detection list: what a camera saw, row by row, with its
thumbnail; filters by camera, type, date, date range and confidence; search by
tracking id and plate; no COUNT(*) per page."""

import re
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from admin_pages import CHANGELIST, changelist_rows, listed_ids, page_messages, text
from conftest import MOMENT, store_detection
from django.contrib import admin
from django.utils import formats, timezone

from detections.models import Detection

pytestmark = pytest.mark.django_db


def test_the_changelist_shows_each_detections_thumbnail_type_camera_and_time(admin_client):
    detection = store_detection(plate="34ABC123")

    row = changelist_rows(admin_client.get(CHANGELIST))[detection.pk]

    assert f'<img src="{detection.thumbnail.url}"' in row["thumbnail_preview"]
    assert text(row["vehicle_type"]) == "Car"
    assert text(row["camera"]) == "gate-1"
    assert text(row["detected_at"]) == formats.localize(timezone.localtime(MOMENT))
    assert text(row["tracking_id"]) == "trk-0042"
    assert text(row["plate"]) == "34ABC123"


def test_the_list_shows_a_thumbnail_for_a_detection_with_a_snapshot_and_a_dash_without(admin_client):
    pictured, bare = store_detection("trk-1"), store_detection("trk-2", with_image=False)

    rows = changelist_rows(admin_client.get(CHANGELIST))

    assert f'<img src="{pictured.thumbnail.url}"' in rows[pictured.pk]["thumbnail_preview"]
    assert text(rows[bare.pk]["thumbnail_preview"]) == "—"


def test_the_changelist_renders_html_in_plate_and_tracking_id_escaped(admin_client):
    detection = store_detection("<b>trk</b>", plate="<script>alert(1)</script>")

    response = admin_client.get(CHANGELIST)
    row = changelist_rows(response)[detection.pk]

    assert b"<script>alert(1)</script>" not in response.content
    assert b"<b>trk</b>" not in response.content
    assert row["plate"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "&lt;b&gt;trk&lt;/b&gt;" in row["tracking_id"]


def test_the_list_filters_by_camera(admin_client):
    gate, yard = store_detection("trk-1", camera="gate-1"), store_detection("trk-2", camera="yard")

    assert listed_ids(admin_client, camera__id__exact=yard.camera_id) == {yard.pk}
    assert listed_ids(admin_client, camera__id__exact=gate.camera_id) == {gate.pk}


def test_the_list_filters_by_vehicle_type(admin_client):
    car, bus = store_detection("trk-1", vehicle_type="car"), store_detection("trk-2", vehicle_type="bus")

    assert listed_ids(admin_client, vehicle_type__exact="bus") == {bus.pk}
    assert listed_ids(admin_client, vehicle_type__exact="car") == {car.pk}


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


def test_the_search_finds_a_plate_in_its_normal_form_whatever_the_spelling(admin_client):
    read = store_detection("trk-read", plate="34A8C123")  # the camera read B as 8
    store_detection("trk-other", plate="06XYZ999")

    assert listed_ids(admin_client, q="34 abc-123") == {read.pk}


def test_the_list_asks_for_no_facet_counts(admin_client):
    store_detection()

    response = admin_client.get(f"{CHANGELIST}?_facets=True")

    assert response.status_code == 200
    assert "Show counts" not in response.content.decode()
