"""Watch-list alerts on the live dashboard, in a real browser against a real server.

A user with the `view alert` permission sees each alert in a banner and in the
alerts panel; one without it sees no alert UI at all (the socket never sends
them alerts either). An alert moves the page's seq but no counter.

The browser set-up is tests/test_dashboard.py's. No sleeps: every wait is
Playwright's auto-waiting `expect` (or `wait_for_function`) with a deadline.
"""

import json
import re

import pytest
from django.conf import global_settings
from playwright.sync_api import expect
from test_dashboard import ARTIFACTS, DESKTOP, LIVE_MS, PASSWORD, PHONE, SLOW_MS, Watched, chromium, post

from detections.alerts.plates import normalize
from detections.models import AlertRule, Watchlist, WatchlistEntry

WATCHER = "alert-watcher"
BYSTANDER = "bystander"
LISTED = "34 ABC 123"
READ = "34ABC124"  # one edit from the listed plate once both are normalised
UNLISTED = "06 XYZ 987"


@pytest.fixture
def watchlist(transactional_db):
    """Made before the server starts, so that its first detection already sees the rule."""
    wl = Watchlist.objects.create(name="stolen vehicles", match="fuzzy", max_edits=1)
    WatchlistEntry.objects.create(watchlist=wl, plate=LISTED, plate_normalized=normalize(LISTED))
    AlertRule.objects.create(name="stolen at the gates", watchlist=wl)
    return wl


@pytest.fixture
def users(transactional_db, django_user_model, settings):
    from django.contrib.auth.models import Permission

    # The server process checks passwords with Django's own hashers, not the
    # fast one the test process uses (conftest.py).
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    watcher = django_user_model.objects.create_user(WATCHER, password=PASSWORD, is_staff=True)
    watcher.user_permissions.add(Permission.objects.get(codename="view_alert", content_type__app_label="detections"))
    django_user_model.objects.create_user(BYSTANDER, password=PASSWORD)


@pytest.fixture
def desktop(watchlist, users, server):
    """A desktop page; Chromium stops before the database is flushed."""
    with chromium() as browser:
        watched = Watched(browser, server, viewport=DESKTOP)
        watched.frames_received = []
        watched.page.on(
            "websocket",
            lambda socket: socket.on("framereceived", lambda p: watched.frames_received.append(json.loads(p))),
        )
        yield watched
        watched.close()


def log_in(watched: Watched, username: str):
    page = watched.page
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    expect(page).to_have_url(f"{watched.server.base_url}/")
    watched.expect_connection("connected")
    return page


def field(element, name: str):
    return element.locator(f'[data-field="{name}"]')


def expect_alert(element, stored: dict, *, read: str, distance: int, camera: str):
    expect(field(element, "rule")).to_have_text("stolen at the gates")
    expect(field(element, "watchlist")).to_have_text("stolen vehicles")
    expect(field(element, "matched")).to_have_text(LISTED)
    expect(field(element, "read")).to_have_text(read)
    expect(field(element, "distance")).to_have_attribute("data-distance", str(distance))
    expect(field(element, "distance")).to_have_text("exact match" if distance == 0 else f"edit distance {distance}")
    expect(field(element, "camera")).to_have_text(camera)
    expect(field(element, "time")).to_have_attribute("datetime", stored["time"])
    expect(field(element, "thumb").locator("img")).to_have_attribute("src", stored["thumbnail_url"])


def test_an_alert_shows_in_a_banner_and_the_panel_and_counts_for_resuming_only(desktop, server, simulated_detection):
    page = log_in(desktop, WATCHER)
    assert json.loads(page.locator("#dashboard-config").text_content())["canViewAlerts"] is True
    panel = page.locator("#alerts")
    banner = page.locator("#alert-banner")
    items = page.locator("#alert-list .alert-item")
    expect(panel).to_be_visible()
    expect(page.locator("#alerts-empty")).to_be_visible()
    expect(banner).to_be_hidden()
    seq_before = page.evaluate("dashboard.lastSeq")

    # A read one edit from a listed plate: its detection, then its alert.
    stored = post(server, simulated_detection(camera="gate-1", id="trk-stolen", plate=READ, vehicle_type="car"))
    assert stored["thumbnail_url"]
    expect(desktop.row(stored["id"])).to_be_visible(timeout=LIVE_MS)
    expect(banner).to_be_visible(timeout=LIVE_MS)
    expect_alert(banner, stored, read=READ, distance=1, camera="gate-1")
    expect(items).to_have_count(1)
    expect_alert(items.first, stored, read=READ, distance=1, camera="gate-1")
    expect(page.locator("#alerts-empty")).to_be_hidden()
    # Its seq is the page's position now; the counts are the detection's alone.
    page.wait_for_function("seq => dashboard.lastSeq === seq", arg=seq_before + 2, timeout=SLOW_MS)
    expect(page.locator("#total-count")).to_have_text("1")
    expect(desktop.counter("car")).to_have_text("1")
    expect(page.locator("#feed .feed-item")).to_have_count(1)
    (held,) = page.evaluate("dashboard.alerts")
    assert held["matched_plate"] == LISTED and held["detection"]["id"] == stored["id"]
    page.wait_for_function("() => document.querySelector('#alert-banner img').naturalWidth > 0", timeout=SLOW_MS)
    desktop.screenshot("dashboard-alert.png")

    # Dismissed, the banner goes; the panel keeps the alert. A click there shows the detection.
    page.click("#alert-banner-dismiss")
    expect(banner).to_be_hidden()
    expect(items).to_have_count(1)
    expect(items.first).to_have_class(re.compile(r"\bis-dismissed\b"))
    items.first.locator("button").click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-image")).to_have_attribute("src", stored["image_url"])
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()

    # An alert raised while the socket is down is replayed on resume, newest on top.
    page.evaluate("() => { dashboard.holdReconnects(); dashboard.socket.close(); }")
    desktop.expect_connection("reconnecting")
    exact = post(server, simulated_detection(camera="yard", id="trk-stolen-again", plate=LISTED, vehicle_type="van"))
    page.evaluate("dashboard.releaseReconnects()")
    desktop.expect_connection("connected")
    expect(banner).to_be_visible(timeout=SLOW_MS)
    expect_alert(banner, exact, read=LISTED, distance=0, camera="yard")
    expect(items).to_have_count(2)
    expect(items.first).to_have_attribute("data-alert-id", str(page.evaluate("dashboard.alerts[0].alert_id")))
    expect_alert(items.first, exact, read=LISTED, distance=0, camera="yard")
    page.wait_for_function("seq => dashboard.lastSeq === seq", arg=seq_before + 4, timeout=SLOW_MS)
    expect(page.locator("#total-count")).to_have_text("2")

    # The filter applies to an alert's detection as it does to detections.
    page.select_option("#filter-camera", "gate-2")
    expect(page).to_have_url(f"{server.base_url}/?camera=gate-2")
    expect(items).to_have_count(0)
    expect(banner).to_be_hidden()
    expect(page.locator("#alerts-empty")).to_be_visible()
    elsewhere = post(server, simulated_detection(camera="gate-1", id="trk-elsewhere", plate=LISTED))
    here = post(server, simulated_detection(camera="gate-2", id="trk-here", plate=READ))
    expect(desktop.row(here["id"])).to_be_visible(timeout=LIVE_MS)
    expect(banner).to_be_visible(timeout=LIVE_MS)
    expect_alert(banner, here, read=READ, distance=1, camera="gate-2")
    expect(items).to_have_count(1)
    assert desktop.row(elsewhere["id"]).count() == 0
    assert [alert["detection"]["tracking_id"] for alert in page.evaluate("dashboard.alerts")] == [
        "trk-here",
        "trk-stolen-again",
        "trk-stolen",
    ]

    # On a phone the banner and the panel fit the width.
    page.set_viewport_size(PHONE)
    expect(banner).to_be_visible()
    # The chart redraws for the new width on its next frame: wait for the page to settle.
    page.wait_for_function(f"document.documentElement.scrollWidth <= {PHONE['width']}")
    for element in ("#alert-banner", "#alert-banner-dismiss", "#alerts"):
        box = page.locator(element).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (element, box)
    desktop.screenshot("dashboard-alert-phone.png")

    desktop.assert_everything_came_from_the_server()
    assert desktop.errors == []


def test_a_user_who_may_not_view_alerts_sees_no_alert_ui(desktop, server, simulated_detection):
    page = log_in(desktop, BYSTANDER)
    assert json.loads(page.locator("#dashboard-config").text_content())["canViewAlerts"] is False
    seq_before = page.evaluate("dashboard.lastSeq")

    stored = post(server, simulated_detection(camera="gate-1", id="trk-stolen", plate=READ))
    # Events come in seq order: once a later detection shows, the alert between
    # them would have arrived too.
    later = post(server, simulated_detection(camera="gate-1", id="trk-later", plate=UNLISTED))
    expect(desktop.row(stored["id"])).to_be_visible(timeout=LIVE_MS)
    expect(desktop.row(later["id"])).to_be_visible(timeout=LIVE_MS)

    assert page.locator("#alerts, #alert-banner, #alert-list, #alert-item, .alert-item, .card-alerts").count() == 0
    assert "has-alerts" not in (page.locator(".panels").get_attribute("class") or "")
    assert page.evaluate("dashboard.alerts") == []
    assert not [frame for frame in desktop.frames_received if frame.get("type") == "alert"]
    # The alert took a seq this user never saw; the page goes on from the detections'.
    assert page.evaluate("dashboard.lastSeq") == seq_before + 3
    expect(page.locator("#total-count")).to_have_text("2")
    ARTIFACTS.mkdir(exist_ok=True)
    desktop.screenshot("dashboard-no-alerts.png")
    assert desktop.errors == []
