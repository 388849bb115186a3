"""Watch-lists and their plates through the API: /api/watchlists/ and
/api/watchlists/{id}/plates/ (protocol.md, "Watch-lists and alerts")."""

import pytest
from alert_helpers import client_with
from conftest import api_client

from detections.alerts import config
from detections.models import AlertRule, Watchlist, WatchlistEntry

pytestmark = pytest.mark.django_db


def add_plate(client, watchlist, **body):
    response = client.post(f"/api/watchlists/{watchlist.pk}/plates/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- Who may do what -------------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/api/watchlists/"),
    ("post", "/api/watchlists/"),
    ("get", "/api/watchlists/{id}/"),
    ("patch", "/api/watchlists/{id}/"),
    ("delete", "/api/watchlists/{id}/"),
    ("get", "/api/watchlists/{id}/plates/"),
    ("post", "/api/watchlists/{id}/plates/"),
    ("delete", "/api/watchlists/{id}/plates/{entry}/"),
    ("post", "/api/watchlists/{id}/plates/import/"),
]


def call(client, method, path, watchlist):
    entry = watchlist.entries.first()
    url = path.format(id=watchlist.pk, entry=entry.pk if entry else 0)
    return getattr(client, method)(url, {}, format="json")


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_anonymous_callers_get_401_even_with_the_public_feed_on(settings, stolen, method, path):
    settings.PUBLIC_FEED = True
    stolen.entries.create(plate="34ABC123", plate_normalized="34A8C123")

    response = call(api_client(), method, path, stolen)

    assert response.status_code == 401, response.content
    assert response.json()["error"] == "not_authenticated"
    assert Watchlist.objects.filter(pk=stolen.pk).exists()


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_viewers_and_edge_units_without_the_permission_get_403(viewer_client, device_client, stolen, method, path):
    stolen.entries.create(plate="34ABC123", plate_normalized="34A8C123")
    alert_viewer = client_with("alert-viewer", "view_alert")

    for client in (viewer_client, device_client, alert_viewer):
        response = call(client, method, path, stolen)
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["error"] == "permission_denied"
    assert stolen.entries.count() == 1


def test_a_user_with_the_permission_may_list_watchlists(manager, stolen):
    response = manager.get("/api/watchlists/")

    assert response.status_code == 200, response.content
    assert [item["name"] for item in response.json()["results"]] == ["stolen vehicles"]


# --- Watch-lists ---------------------------------------------------------------------------


def test_a_watchlist_is_created_with_the_defaults_the_protocol_gives(manager):
    response = manager.post("/api/watchlists/", {"name": "stolen vehicles"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["match"] == "fuzzy" and body["max_edits"] == 1 and body["active"] is True
    assert body["plate_count"] == 0
    assert Watchlist.objects.get(pk=body["id"]).name == "stolen vehicles"


def test_a_watchlist_is_read_changed_and_deleted_with_or_without_a_trailing_slash(manager, stolen):
    add_plate(manager, stolen, plate="34ABC123")

    read = manager.get(f"/api/watchlists/{stolen.pk}")
    changed = manager.patch(f"/api/watchlists/{stolen.pk}", {"match": "exact", "max_edits": 0}, format="json")
    deleted = manager.delete(f"/api/watchlists/{stolen.pk}/")

    assert read.status_code == 200 and read.json()["plate_count"] == 1
    assert changed.status_code == 200, changed.content
    assert (changed.json()["match"], changed.json()["max_edits"]) == ("exact", 0)
    assert deleted.status_code == 204
    assert not Watchlist.objects.exists() and not WatchlistEntry.objects.exists()


def test_a_watchlist_is_not_replaced_with_put(manager, stolen):
    response = manager.put(f"/api/watchlists/{stolen.pk}/", {"name": "other"}, format="json")

    assert response.status_code == 405


@pytest.mark.parametrize(
    "body, field",
    [
        pytest.param({"name": "x", "match": "sometimes"}, "match", id="match neither exact nor fuzzy"),
        pytest.param({"name": "x", "max_edits": 3}, "max_edits", id="max_edits above 2"),
        pytest.param({"name": "x", "max_edits": -1}, "max_edits", id="max_edits below 0"),
        pytest.param({"name": "  "}, "name", id="a blank name"),
        pytest.param({}, "name", id="no name"),
    ],
)
def test_a_bad_watchlist_is_a_400_naming_the_field(manager, stolen, body, field):
    response = manager.post("/api/watchlists/", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert Watchlist.objects.count() == 1


def test_a_name_another_list_has_is_a_409(manager, stolen):
    response = manager.post("/api/watchlists/", {"name": "stolen vehicles"}, format="json")

    assert response.status_code == 409, response.content
    assert (response.json()["error"], response.json()["field"]) == ("unique", "name")
    assert Watchlist.objects.count() == 1


def test_deleting_a_watchlist_a_rule_uses_is_a_409_naming_the_rules(manager, stolen):
    rule = AlertRule.objects.create(name="stolen at the gates", watchlist=stolen)

    response = manager.delete(f"/api/watchlists/{stolen.pk}/")

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["error"] == "watchlist_in_use"
    assert "stolen at the gates" in body["detail"]
    assert body["rules"] == [{"id": rule.pk, "name": "stolen at the gates"}]
    assert Watchlist.objects.filter(pk=stolen.pk).exists()


def test_deleting_a_watchlist_with_thousands_of_plates_bumps_the_revision_once_per_list(manager, stolen):
    WatchlistEntry.objects.bulk_create(
        WatchlistEntry(watchlist=stolen, plate=f"P{n}", plate_normalized=f"P{n}") for n in range(2000)
    )
    before = config.revision()

    response = manager.delete(f"/api/watchlists/{stolen.pk}/")

    assert response.status_code == 204
    assert not WatchlistEntry.objects.exists()
    assert config.revision() == before + 1


def test_an_unknown_watchlist_is_a_404_json(manager):
    for path in ("/api/watchlists/999/", "/api/watchlists/999/plates/"):
        response = manager.get(path)
        assert response.status_code == 404, response.content
        assert response.json()["error"] == "not_found"


# --- Plates ----------------------------------------------------------------------------------


def test_a_plate_is_added_with_its_normal_form_and_answered_with_its_id(manager, stolen):
    before = config.revision()

    body = add_plate(manager, stolen, plate=" 34 abc-123 ", note="reported stolen", expires_at=None)

    entry = WatchlistEntry.objects.get()
    assert body["id"] == entry.pk
    assert body["plate"] == "34 abc-123" and body["plate_normalized"] == "34A8C123"
    assert (entry.plate, entry.plate_normalized, entry.note) == ("34 abc-123", "34A8C123", "reported stolen")
    assert body["expires_at"] is None
    assert config.revision() > before


def test_a_look_alike_spelling_of_a_listed_plate_is_a_409_naming_the_entry(manager, stolen):
    first = add_plate(manager, stolen, plate="34ABC123")

    response = manager.post(f"/api/watchlists/{stolen.pk}/plates/", {"plate": "34 a8c-i23"}, format="json")

    assert response.status_code == 409, response.content
    assert response.json()["error"] == "plate_already_listed"
    assert response.json()["entry_id"] == first["id"]
    assert WatchlistEntry.objects.count() == 1


def test_the_same_plate_may_be_on_two_lists(manager, stolen):
    other = Watchlist.objects.create(name="unpaid tolls")

    add_plate(manager, stolen, plate="34ABC123")
    add_plate(manager, other, plate="34ABC123")

    assert WatchlistEntry.objects.count() == 2


@pytest.mark.parametrize(
    "expires_at, stored",
    [
        pytest.param("2026-12-31T23:59:00Z", "2026-12-31T23:59:00.000000Z", id="UTC"),
        pytest.param("2026-12-31T10:00:00+03:00", "2026-12-31T07:00:00.000000Z", id="with an offset"),
        pytest.param("2026-12-31T10:00:00", "2026-12-31T10:00:00.000000Z", id="without an offset: UTC"),
        pytest.param("2026-12-31", "2026-12-31T00:00:00.000000Z", id="a date: its midnight UTC"),
        pytest.param("", None, id="empty: never"),
    ],
)
def test_expires_at_is_read_as_iso_8601(manager, stolen, expires_at, stored):
    body = add_plate(manager, stolen, plate="34ABC123", expires_at=expires_at)

    assert body["expires_at"] == stored


@pytest.mark.parametrize(
    "body, field",
    [
        pytest.param({"plate": ""}, "plate", id="empty plate"),
        pytest.param({"plate": " -.- "}, "plate", id="only separators"),
        pytest.param({"plate": "X" * 33}, "plate", id="too long"),
        pytest.param({"plate": "34\x00ABC"}, "plate", id="a control character"),
        pytest.param({}, "plate", id="no plate"),
        pytest.param({"plate": "34ABC123", "expires_at": "tomorrow"}, "expires_at", id="expiry not a time"),
        pytest.param({"plate": "34ABC123", "expires_at": "0001-01-01T00:00:00Z"}, "expires_at", id="expiry too early"),
        pytest.param({"plate": "34ABC123", "expires_at": 1767225600}, "expires_at", id="expiry a number"),
        pytest.param({"plate": "34ABC123", "note": "n" * 201}, "note", id="note too long"),
    ],
)
def test_a_bad_plate_is_a_400_naming_the_field(manager, stolen, body, field):
    response = manager.post(f"/api/watchlists/{stolen.pk}/plates/", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not WatchlistEntry.objects.exists()


def test_plates_are_listed_by_normal_form_in_numbered_pages(manager, stolen):
    for plate in ("06 XYZ 77", "35KLM900", "34ABC123"):
        add_plate(manager, stolen, plate=plate)

    first = manager.get(f"/api/watchlists/{stolen.pk}/plates/", {"page_size": 2}).json()
    second = manager.get(first["next"]).json()

    assert first["count"] == 3
    assert [item["plate"] for item in first["results"]] == ["06 XYZ 77", "34ABC123"]
    assert [item["plate"] for item in second["results"]] == ["35KLM900"]
    assert second["next"] is None


def test_a_plate_is_deleted_from_its_own_list_only(manager, stolen):
    other = Watchlist.objects.create(name="unpaid tolls")
    entry = add_plate(manager, stolen, plate="34ABC123")

    elsewhere = manager.delete(f"/api/watchlists/{other.pk}/plates/{entry['id']}/")
    deleted = manager.delete(f"/api/watchlists/{stolen.pk}/plates/{entry['id']}")

    assert elsewhere.status_code == 404
    assert deleted.status_code == 204
    assert not WatchlistEntry.objects.exists()
