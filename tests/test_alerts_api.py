"""/api/alerts/: listing (filters, cursor pages, a deleted detection flagged)
and acknowledging (protocol.md, "Watch-lists and alerts"). Alerts are stored
directly here, as the matching code stores them."""

import re

import pytest
from alert_helpers import client_with, store_alert
from conftest import api_client, store_detection
from django.db import connection
from django.test.utils import CaptureQueriesContext
from helpers import assert_not_found_json

from detections.core import writes
from detections.models import Alert, AlertRule, Watchlist

pytestmark = pytest.mark.django_db

FIELDS = {
    "id",
    "seq",
    "rule",
    "watchlist",
    "entry_id",
    "matched_plate",
    "distance",
    "detection",
    "created_at",
    "acknowledged_at",
    "acknowledged_by",
}


@pytest.fixture
def watcher(db):
    """A user who may view (and acknowledge) alerts."""
    return client_with("watcher", "view_alert")


@pytest.fixture
def rule(db) -> AlertRule:
    return AlertRule.objects.create(name="stolen at the gates", watchlist=Watchlist.objects.create(name="stolen"))


def listed(client, **params) -> list[int]:
    response = client.get("/api/alerts/", params)
    assert response.status_code == 200, response.content
    return [alert["id"] for alert in response.json()["results"]]


# --- Who may do what -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path", [("get", "/api/alerts/"), ("get", "/api/alerts/{id}/"), ("post", "/api/alerts/{id}/acknowledge/")]
)
def test_alerts_need_the_view_alert_permission_whatever_public_feed_says(
    settings, viewer_client, device_client, method, path
):
    settings.PUBLIC_FEED = True
    alert = store_alert()
    manager = client_with("manager", "manage_watchlists")
    url = path.format(id=alert.pk)

    assert getattr(api_client(), method)(url).status_code == 401
    for client in (viewer_client, device_client, manager):
        response = getattr(client, method)(url)
        assert response.status_code == 403, response.content
        assert response.json()["error"] == "permission_denied"
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_an_alert_is_listed_with_exactly_the_protocols_fields(watcher, rule):
    detection = store_detection(plate="34ABC123")
    alert = store_alert(detection.pk, rule=rule, watchlist=rule.watchlist, entry_id=51, distance=1)

    (item,) = watcher.get("/api/alerts/").json()["results"]

    assert set(item) == FIELDS
    assert item["id"] == alert.pk and item["seq"] == alert.seq
    assert (item["rule"], item["watchlist"], item["entry_id"]) == (rule.pk, rule.watchlist.pk, 51)
    assert (item["matched_plate"], item["distance"]) == ("34 ABC 123", 1)
    assert item["detection"] == alert.detection  # no "deleted" while the detection is stored
    assert item["created_at"] == "2026-11-24T09:00:00.000000Z"
    assert (item["acknowledged_at"], item["acknowledged_by"]) == (None, None)


def test_alerts_are_newest_first(watcher):
    alerts = [store_alert(minutes=minutes) for minutes in (5, 0, 10)]

    assert listed(watcher) == [alerts[2].pk, alerts[0].pk, alerts[1].pk]


def test_the_filters_narrow_the_list(watcher, rule):
    other_rule = AlertRule.objects.create(name="every truck")
    early = store_alert(rule=rule, camera="gate-1", minutes=0)
    late = store_alert(rule=other_rule, camera="yard", minutes=60)
    done = store_alert(rule=rule, camera="yard", minutes=30)
    Alert.objects.filter(pk=done.pk).update(acknowledged_at=done.created_at)

    assert listed(watcher, since="2026-11-24T09:30:00Z") == [late.pk, done.pk]
    assert listed(watcher, until="2026-11-24T09:30:00Z") == [early.pk]
    assert listed(watcher, rule=rule.pk) == [done.pk, early.pk]
    assert listed(watcher, camera="yard") == [late.pk, done.pk]
    assert listed(watcher, acknowledged="true") == [done.pk]
    assert listed(watcher, acknowledged="false") == [late.pk, early.pk]
    assert listed(watcher, camera="yard", acknowledged="false") == [late.pk]
    assert listed(watcher, rule=999) == []


@pytest.mark.parametrize(
    "params, field",
    [
        pytest.param({"since": "yesterday"}, "since", id="since not a time"),
        pytest.param({"rule": "stolen"}, "rule", id="rule not an id"),
        pytest.param({"acknowledged": "maybe"}, "acknowledged", id="acknowledged neither true nor false"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(watcher, params, field):
    response = watcher.get("/api/alerts/", params)

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_cursor_pages_walk_every_alert_once_newest_first(watcher):
    # Three at the same instant: ties are where offset-free paging slips.
    alerts = [store_alert(minutes=minutes) for minutes in (0, 1, 1, 1, 2)]
    pages, url = [], "/api/alerts/?page_size=2"
    while url:
        body = watcher.get(url).json()
        pages.append([item["id"] for item in body["results"]])
        url = body["next"]

    expected = sorted(alerts, key=lambda a: (a.created_at, a.pk), reverse=True)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [pk for page in pages for pk in page] == [a.pk for a in expected]


def test_a_deleted_detection_is_flagged_with_one_query_a_page(watcher):
    kept, gone = store_detection("trk-1"), store_detection("trk-2")
    alerts = [store_alert(kept.pk, minutes=1), store_alert(gone.pk, minutes=2), store_alert(gone.pk, minutes=3)]
    writes.detection_delete(detection=gone)

    with CaptureQueriesContext(connection) as queries:
        results = {item["id"]: item["detection"] for item in watcher.get("/api/alerts/").json()["results"]}

    assert "deleted" not in results[alerts[0].pk]
    assert results[alerts[1].pk] == {**alerts[1].detection, "deleted": True}
    assert results[alerts[2].pk]["deleted"] is True
    assert len([q for q in queries.captured_queries if re.search(r"\bdetections_detection\b", q["sql"])]) == 1


def test_one_alert_is_read_with_its_deleted_flag(watcher):
    alert = store_alert(12345)  # no such detection

    response = watcher.get(f"/api/alerts/{alert.pk}")

    assert response.status_code == 200, response.content
    assert response.json()["detection"]["deleted"] is True


def test_an_unknown_alert_is_a_404_json(watcher):
    assert_not_found_json(watcher.get("/api/alerts/999/"))
    assert_not_found_json(watcher.post("/api/alerts/999/acknowledge/"))


def test_acknowledging_records_who_and_when_once(watcher, rule):
    alert = store_alert(rule=rule)
    colleague = client_with("colleague", "view_alert")

    first = watcher.post(f"/api/alerts/{alert.pk}/acknowledge/")
    again = colleague.post(f"/api/alerts/{alert.pk}/acknowledge")

    assert first.status_code == 200, first.content
    assert first.json()["acknowledged_by"] == "watcher"
    assert first.json()["acknowledged_at"]
    assert again.status_code == 200
    assert again.json() == first.json()
    alert.refresh_from_db()
    assert alert.acknowledged_by.username == "watcher"
    assert listed(watcher, acknowledged="true") == [alert.pk]


def test_an_alert_outlives_its_rule_and_watchlist(watcher, rule):
    alert = store_alert(rule=rule, watchlist=rule.watchlist)
    watchlist = rule.watchlist
    rule.delete()
    watchlist.delete()

    item = watcher.get(f"/api/alerts/{alert.pk}/").json()

    assert (item["rule"], item["watchlist"]) == (None, None)
