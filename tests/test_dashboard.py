"""The live dashboard at `/`, in a real browser against a real server.

Debian's headless Chromium (/usr/bin/chromium), driven by Playwright, logs in
through the admin's login page and watches a daphne process that edge units
post to over HTTP. Screenshots land in test-artifacts/ at the repository root.

No sleeps: every wait is Playwright's auto-waiting `expect` (or
`wait_for_function`) with a deadline.
"""

import json
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import ROOT, ServerProcess
from django.conf import global_settings
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from detections.dashboard.views import FEED_SIZE

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
USERNAME = "operator"
PASSWORD = "a-long-operator-password-1"
LIVE_MS = 1000  # a posted detection is on the screen within a second
SLOW_MS = 15000  # reconnects, page loads


# --- Fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def operator(django_user_model, settings):
    # The server process checks the password with Django's own hashers, not the
    # fast one the test process uses (conftest.py).
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    # Not staff: any active user may watch the dashboard.
    return django_user_model.objects.create_user(USERNAME, password=PASSWORD)


@contextmanager
def chromium():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser(server, operator):
    """Chromium, started after the server and the user exist and stopped before
    the database is flushed: the test makes no ORM call while it runs."""
    with chromium() as browser:
        yield browser


class Watched:
    """A page with everything it loads, opens and complains about recorded."""

    def __init__(self, browser, server, **context_args):
        self.server = server
        self.context = browser.new_context(base_url=server.base_url, **context_args)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.sockets: list[str] = []
        self.frames_sent: list[dict] = []
        self.errors: list[str] = []
        self.failed: list[str] = []  # requests that got no answer, or a 4xx or 5xx
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("websocket", self._socket_opened)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def _request_failed(self, request):
        # The browser fetches a page's icon on its own after the load: going to the
        # next page cancels it (net::ERR_ABORTED), which is no failure of the server's.
        if request.url.endswith(ICON) and request.failure == "net::ERR_ABORTED":
            return
        self.failed.append(f"{request.url}: {request.failure}")

    def _response(self, response):
        if response.status >= 400:
            self.failed.append(f"{response.url}: {response.status}")

    def _socket_opened(self, socket):
        self.sockets.append(socket.url)
        socket.on("framesent", lambda payload: self.frames_sent.append(json.loads(payload)))

    def log_in(self):
        page = self.page
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.press("#id_password", "Enter")
        expect(page).to_have_url(f"{self.server.base_url}/")
        self.expect_connection("connected")
        return page

    def expect_connection(self, state: str, timeout=SLOW_MS):
        expect(self.page.locator("#connection")).to_have_attribute("data-state", state, timeout=timeout)

    def row(self, detection_id: int):
        return self.page.locator(f'#feed .feed-item[data-id="{detection_id}"]')

    def counter(self, vehicle_type: str):
        return self.page.locator(f'.counter-type[data-type="{vehicle_type}"] [data-count]')

    def wait_for_chart_total(self, total: int):
        self.page.wait_for_function(
            """total => window.dashboard && dashboard.chart &&
                 dashboard.chart.data.datasets.reduce((n, set) => n + set.data.reduce((a, b) => a + b, 0), 0) === total""",
            arg=total,
            timeout=SLOW_MS,
        )

    def screenshot(self, name: str, **args):
        self.page.screenshot(path=str(ARTIFACTS / name), **args)

    def assert_everything_came_from_the_server(self):
        origin = self.server.base_url
        foreign = [url for url in self.requests if not (url.startswith(origin + "/") or url.startswith("data:"))]
        assert not foreign, f"the page loaded URLs from elsewhere: {foreign}"
        assert self.sockets and all(url.startswith(self.server.ws_url + "/") for url in self.sockets), self.sockets

    def close(self):
        self.context.close()


@pytest.fixture
def desktop(browser, server):
    watched = Watched(browser, server, viewport=DESKTOP)
    yield watched
    watched.close()


@pytest.fixture
def phone(browser, server):
    watched = Watched(browser, server, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    yield watched
    watched.close()


# --- Posting as an edge unit -------------------------------------------------------------------------


def post(server, body: dict) -> dict:
    with server.device() as http:
        response = http.post("/api/detect", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def delete(server, detection_id: int):
    with server.staff() as http:
        response = http.delete(f"/api/detections/{detection_id}/")
    assert response.status_code == 204, response.text


def seed_a_day_of_traffic(server, simulated_detection, n=48):
    """Detections spread over the last 24 hours, busier by day, in one batch."""
    now = datetime.now(UTC)
    cameras = ("gate-1", "gate-2", "yard", "gate-1")
    bodies = []
    for i in range(n):
        hours_ago = (i * 7 % 23) + (i % 3) * 0.3
        moment = now - timedelta(hours=hours_ago, minutes=i % 50)
        bodies.append(
            simulated_detection(
                camera=cameras[i % len(cameras)],
                id=f"seed-{i:03d}",
                time=moment.isoformat().replace("+00:00", "Z"),
            )
        )
    with server.device() as http:
        response = http.post("/api/detections/batch/", json={"detections": bodies})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == n
    return bodies


# --- Without a browser ---------------------------------------------------------------------------------


def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login_page(server):
    response = httpx.get(server.base_url + "/", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/?next=/"
    # The page's own script asks for JSON: it gets an answer it can read.
    response = httpx.get(server.base_url + "/?format=json", follow_redirects=False)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_the_state_the_page_starts_from_lines_up_with_the_feed(device_client, django_user_model):
    """The snapshot's seq is the last event it includes, and filters apply to
    its counts, series and latest detections alike."""
    from conftest import detection_body

    for n, (camera, vehicle_type) in enumerate([("gate-1", "car"), ("gate-2", "bus"), ("gate-1", "bus")]):
        body = detection_body(id=f"state-{n}", camera=camera, vehicle_type=vehicle_type, time=_minutes_ago(n + 1))
        assert device_client.post("/api/detect", body, format="json").status_code == 201
    django_user_model.objects.create_user("viewer-only", password=PASSWORD)  # not staff: the page is for viewers
    client = Client()
    client.login(username="viewer-only", password=PASSWORD)

    state = client.get("/?format=json").json()
    assert state["seq"] == 3 and state["total"] == 3
    assert state["by_vehicle_type"]["bus"] == 2 and state["by_camera"] == {"gate-1": 2, "gate-2": 1}
    assert [d["tracking_id"] for d in state["recent"]] == ["state-0", "state-1", "state-2"]
    assert sum(point["count"] for point in state["series"]["points"]) == 3

    filtered = client.get("/?format=json&camera=gate-1&vehicle_type=BUS").json()
    assert filtered["filter"] == {"camera": "gate-1", "vehicle_type": "bus"}
    assert filtered["by_camera"] == {"gate-1": 1} and filtered["total"] == 3
    assert [d["tracking_id"] for d in filtered["recent"]] == ["state-2"]

    ignored = client.get("/?format=json&vehicle_type=spaceship").json()
    assert ignored["filter"] == {"camera": None, "vehicle_type": None}

    page = client.get("/?camera=gate-1")
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0")
    assert b'id="dashboard-state"' in page.content and b'<option value="gate-1" selected>' in page.content
    assert len(state["recent"]) <= FEED_SIZE


def _minutes_ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


# --- In the browser ----------------------------------------------------------------------------------------


def test_an_operator_watches_detections_arrive_and_go_and_the_feed_survives_a_dropped_socket(
    server, desktop, simulated_detection
):
    seeded = seed_a_day_of_traffic(server, simulated_detection)
    page = desktop.log_in()

    # Counters, chart and per-camera bars start from what is stored.
    expect(page.locator("#total-count")).to_have_text(str(len(seeded)))
    for vehicle_type in ("car", "truck", "bus"):
        expected = sum(body["vehicle_type"] == vehicle_type for body in seeded)
        expect(desktop.counter(vehicle_type)).to_have_text(str(expected))
    expect(page.locator("#hourly-chart")).to_be_visible()
    desktop.wait_for_chart_total(len(seeded))
    expect(page.locator("#camera-bars .bar-name")).to_have_text(["gate-1", "gate-2", "yard"])
    expect(page.locator("#feed .feed-item")).to_have_count(min(len(seeded), FEED_SIZE))

    # A new detection shows at once: row, counters, chart, with its text shown as text.
    plate = "<img src=x onerror=alert(1)>"
    body = simulated_detection(camera="yard", id="<b>trk-live</b>", plate=plate, vehicle_type="bus")
    stored = post(server, body)
    row = desktop.row(stored["id"])
    expect(row).to_be_visible(timeout=LIVE_MS)
    expect(row.locator(".plate")).to_have_text(plate)
    expect(row.locator(".feed-camera")).to_have_text("yard")
    expect(row.locator(".type-badge")).to_have_text("bus")
    expect(row.locator("img")).to_have_attribute("src", re.compile(r"^data:image/jpeg;base64,"))
    expect(page.locator("#feed .feed-item").first).to_have_attribute("data-id", str(stored["id"]))
    assert row.locator(".plate img, .plate b").count() == 0
    expect(page.locator("#total-count")).to_have_text(str(len(seeded) + 1))
    buses = sum(b["vehicle_type"] == "bus" for b in seeded) + 1
    expect(desktop.counter("bus")).to_have_text(str(buses))
    desktop.wait_for_chart_total(len(seeded) + 1)
    desktop.screenshot("dashboard-desktop.png", full_page=True)

    # Clicking it shows the full snapshot and its details.
    row.click()
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#detail-image")).to_have_attribute("src", stored["image_url"])
    page.wait_for_function("() => document.getElementById('detail-image').naturalWidth === 640")
    expect(dialog.locator("#detail-bbox")).to_be_visible()
    expect(dialog.locator("#detail-title")).to_have_text(f"Bus · {plate}")
    expect(dialog.locator("#detail-facts")).to_contain_text("<b>trk-live</b>")
    expect(dialog.locator("#detail-facts")).to_contain_text("Received")
    assert dialog.locator("#detail-facts b, #detail-title img").count() == 0
    desktop.screenshot("dashboard-desktop-detail.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # A deletion takes it off the feed and the counts.
    delete(server, stored["id"])
    expect(row).to_have_count(0, timeout=LIVE_MS)
    expect(page.locator("#total-count")).to_have_text(str(len(seeded)))
    expect(desktop.counter("bus")).to_have_text(str(buses - 1))
    desktop.wait_for_chart_total(len(seeded))

    # The socket drops; a detection is posted while it is down; the page
    # reconnects with ?after=<the last seq it saw> and catches up.
    seq_before = page.evaluate("dashboard.lastSeq")
    page.evaluate("() => { dashboard.holdReconnects(); dashboard.socket.close(); }")
    desktop.expect_connection("reconnecting")
    expect(page.locator("#connection-label")).to_have_text("Reconnecting…")
    page.locator(".topbar").screenshot(path=str(ARTIFACTS / "dashboard-desktop-reconnecting.png"))
    missed = post(server, simulated_detection(camera="gate-2", id="trk-missed"))
    assert desktop.row(missed["id"]).count() == 0  # no socket, no event
    sockets_before = len(desktop.sockets)
    page.evaluate("dashboard.releaseReconnects()")
    desktop.expect_connection("connected")
    expect(desktop.row(missed["id"])).to_be_visible(timeout=SLOW_MS)
    expect(page.locator("#total-count")).to_have_text(str(len(seeded) + 1))
    assert desktop.sockets[sockets_before:] == [f"{server.ws_url}/ws?after={seq_before}"]

    # ... and is live again.
    again = post(server, simulated_detection(camera="gate-1", id="trk-after"))
    expect(desktop.row(again["id"])).to_be_visible(timeout=LIVE_MS)
    assert page.evaluate("dashboard.lastSeq") == seq_before + 2

    desktop.assert_everything_came_from_the_server()
    assert desktop.errors == []


def test_the_filter_narrows_the_feed_the_counts_and_the_socket(server, desktop, simulated_detection):
    seeded = seed_a_day_of_traffic(server, simulated_detection, n=24)
    page = desktop.log_in()

    page.select_option("#filter-camera", "gate-2")
    expect(page).to_have_url(f"{server.base_url}/?camera=gate-2")
    gate_2 = sum(body["camera"] == "gate-2" for body in seeded)
    expect(page.locator("#total-label")).to_have_text("Matching detections")
    expect(page.locator("#total-count")).to_have_text(str(gate_2))
    expect(page.locator("#total-note")).to_have_text(f"of {len(seeded)} stored")
    expect(page.locator("#feed .feed-camera")).to_have_count(gate_2)
    expect(page.locator("#feed .feed-camera").filter(has_not_text="gate-2")).to_have_count(0)
    desktop.wait_for_chart_total(gate_2)
    desktop.screenshot("dashboard-desktop-filtered.png")
    assert {"type": "subscribe", "cameras": ["gate-2"], "vehicle_types": None} in desktop.frames_sent

    # Events come in seq order: once the later gate-2 detection shows, the
    # gate-1 one before it has been seen and left out.
    other = post(server, simulated_detection(camera="gate-1", id="trk-other-camera"))
    mine = post(server, simulated_detection(camera="gate-2", id="trk-my-camera"))
    expect(desktop.row(mine["id"])).to_be_visible(timeout=LIVE_MS)
    expect(desktop.row(other["id"])).to_have_count(0)
    expect(page.locator("#total-count")).to_have_text(str(gate_2 + 1))
    expect(page.locator("#total-note")).to_have_text(f"of {len(seeded) + 2} stored")

    # Narrower still, by type; then back to everything.
    page.select_option("#filter-type", mine["vehicle_type"])
    expect(page).to_have_url(f"{server.base_url}/?camera=gate-2&vehicle_type={mine['vehicle_type']}")
    expect(desktop.row(mine["id"])).to_be_visible()
    expect(page.locator("#feed .type-badge").filter(has_not_text=mine["vehicle_type"])).to_have_count(0)
    page.click("#filter-clear")
    expect(page).to_have_url(f"{server.base_url}/")
    expect(page.locator("#total-label")).to_have_text("Detections stored")
    expect(page.locator("#total-count")).to_have_text(str(len(seeded) + 2))
    expect(desktop.row(other["id"])).to_be_visible()
    assert desktop.frames_sent[-2:] == [
        {"type": "subscribe", "cameras": None, "vehicle_types": None},
        {"type": "resume", "after": len(seeded) + 2},
    ]
    assert desktop.errors == []


def test_after_a_reset_the_page_reloads_its_state_and_carries_on(server, desktop, simulated_detection):
    seed_a_day_of_traffic(server, simulated_detection, n=6)
    page = desktop.log_in()
    # A position the server cannot resume from (as after the database was restored
    # from a backup): it answers `reset`, and the page starts over from a snapshot.
    page.evaluate("() => { dashboard.model.seq = 1e9; dashboard.socket.close(); }")
    desktop.expect_connection("connected")
    page.wait_for_function("() => dashboard.lastSeq === 6", timeout=SLOW_MS)
    expect(page.locator("#total-count")).to_have_text("6")
    stored = post(server, simulated_detection(camera="yard", id="trk-after-reset"))
    expect(desktop.row(stored["id"])).to_be_visible(timeout=LIVE_MS)
    expect(page.locator("#total-count")).to_have_text("7")
    assert desktop.errors == []


def test_without_the_test_hooks_setting_the_page_exposes_nothing_and_is_still_live(
    transactional_db, _media_root, credentials, operator, simulated_detection
):
    """DASHBOARD_TEST_HOOKS is off by default (the other tests' servers turn it on)."""
    env = {"DASHBOARD_TEST_HOOKS": "false"}
    with ServerProcess(_media_root, credentials, env) as server, chromium() as browser:
        desktop = Watched(browser, server, viewport=DESKTOP)
        try:
            page = desktop.log_in()
            assert json.loads(page.locator("#dashboard-config").text_content())["testHooks"] is False
            assert page.evaluate("() => 'dashboard' in window") is False
            stored = post(server, simulated_detection(camera="gate-1", id="trk-no-hooks"))
            row = desktop.row(stored["id"])
            expect(row).to_be_visible(timeout=LIVE_MS)
            expect(row.locator(".feed-camera")).to_have_text("gate-1")
            expect(page.locator("#total-count")).to_have_text("1")
            expect(desktop.counter(stored["vehicle_type"])).to_have_text("1")
            expect(page.locator("#camera-bars .bar-name")).to_have_text(["gate-1"])
            expect(page.locator("#chart-note")).to_have_text(re.compile(r"^1 in the last 24 h"))
            assert page.evaluate("() => 'dashboard' in window") is False
            desktop.assert_everything_came_from_the_server()
            assert desktop.errors == []
        finally:
            desktop.close()


def test_a_page_whose_session_ended_says_so_instead_of_retrying(server, desktop):
    page = desktop.log_in()
    desktop.context.clear_cookies()
    page.evaluate("dashboard.socket.close()")
    desktop.expect_connection("signed-out")
    expect(page.locator("#connection-login")).to_be_visible()
    expect(page.locator("#connection-login")).to_have_attribute("href", "/login/?next=/")


def test_the_dashboard_fits_a_phone(server, phone, simulated_detection):
    seed_a_day_of_traffic(server, simulated_detection)
    page = phone.log_in()
    stored = post(server, simulated_detection(camera="gate-1", id="trk-phone"))
    expect(phone.row(stored["id"])).to_be_visible(timeout=LIVE_MS)
    phone.wait_for_chart_total(49)
    # Nothing sticks out sideways: no horizontal scrolling on a 390 px screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for element in ("#connection", "#filter-camera", "#total-count", "#hourly-chart", "#camera-bars"):
        box = page.locator(element).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (element, box)
    phone.screenshot("dashboard-phone.png")
    phone.screenshot("dashboard-phone-full.png", full_page=True)

    phone.row(stored["id"]).tap()
    expect(page.locator("#detail")).to_be_visible()
    page.wait_for_function("() => document.getElementById('detail-image').naturalWidth > 0")
    box = page.locator("#detail-image").bounding_box()
    assert box["width"] <= PHONE["width"]
    phone.screenshot("dashboard-phone-detail.png")
    page.locator("#detail-close").tap()
    expect(page.locator("#detail")).to_be_hidden()
    phone.assert_everything_came_from_the_server()
    assert phone.errors == []


def test_the_day_chart_names_the_day_where_it_starts_and_where_it_crosses_midnight(
    server, browser, simulated_detection
):
    """A fixed zone and locale, so that the labels can be worked out here too."""
    zone = "Asia/Tokyo"  # UTC+9 all year
    seed_a_day_of_traffic(server, simulated_detection, n=6)
    for viewport in (DESKTOP, PHONE):
        watched = Watched(browser, server, viewport=viewport, timezone_id=zone, locale="en-GB")
        try:
            watched.log_in()
            watched.wait_for_chart_total(6)
            starts, ticks = watched.page.evaluate(
                "() => [dashboard.model.series.starts, dashboard.chart.scales.x.ticks.map((t) => [t.value, t.label])]"
            )
        finally:
            watched.close()
        moments = [datetime.fromtimestamp(start / 1000, ZoneInfo(zone)) for start in starts]
        shown = {index: label for index, label in ticks if label is not None}
        labels = [shown.get(index) for index in range(len(moments))]
        assert len(moments) >= 24 and len(shown) >= 4, (viewport, labels)

        first = min(shown)
        for index, label in shown.items():
            moment = moments[index]
            clock = f"{moment:%H:%M}"
            if index == first or moment.hour == 0:  # the day, by name
                assert label == [clock, f"{moment:%a} {moment.day} {moment:%b}"], (viewport, index, labels)
            else:
                assert label == clock, (viewport, index, labels)
        # The 24 hours reach into a second day, and its midnight is labelled with
        # it (it may be the first label shown: a narrow axis skips some hours).
        midnights = [index for index, moment in enumerate(moments) if moment.hour == 0]
        assert midnights and set(midnights) <= set(shown) and first <= midnights[0], (viewport, labels)


# --- Every page, with its icon and without an error --------------------------------------------------

ICON = "/static/detections/favicon.svg"


def assert_loaded_cleanly(watched: Watched, path: str):
    """The page at `path` declares the site's icon, and nothing it loaded failed or complained."""
    page = watched.page
    expect(page.locator('link[rel="icon"]')).to_have_attribute("href", ICON)
    page.wait_for_load_state("load")
    assert (watched.failed, watched.errors) == ([], []), path


@pytest.fixture
def superuser(operator, django_user_model):
    """Staff who may see every admin page (after `operator`: the server's password hashers)."""
    return django_user_model.objects.create_superuser("boss", password=PASSWORD)


def test_every_dashboard_and_admin_page_has_the_icon_and_loads_without_an_error(
    server, superuser, browser, simulated_detection
):
    post(server, simulated_detection(camera="gate-1", id="trk-pages"))
    visitor = Watched(browser, server, viewport=DESKTOP)
    try:
        page = visitor.page
        for path in ("/login/", "/admin/login/"):
            page.goto(path)
            assert_loaded_cleanly(visitor, path)
        # Browsers ask for /favicon.ico of what is not a page: it leads to the icon.
        icon = page.goto("/favicon.ico")
        assert (icon.status, icon.url, icon.headers["content-type"]) == (200, server.base_url + ICON, "image/svg+xml")

        visitor.log_in()  # the operator, on the dashboard
        assert_loaded_cleanly(visitor, "/")
    finally:
        visitor.close()

    staff = Watched(browser, server, viewport=DESKTOP)
    try:
        page = staff.page
        page.goto("/admin/login/")
        page.fill("#id_username", "boss")
        page.fill("#id_password", PASSWORD)
        page.press("#id_password", "Enter")
        expect(page).to_have_url(f"{server.base_url}/admin/")
        assert_loaded_cleanly(staff, "/admin/")
        # Each model's list and add page, as the index links them, and a detection's own page.
        paths = page.eval_on_selector_all("#content-main a[href^='/admin/']", "links => links.map(a => a.pathname)")
        assert "/admin/detections/detection/" in paths and "/admin/detections/watchlist/add/" in paths, paths
        page.goto("/admin/detections/detection/")
        paths.append(page.locator("#result_list tbody a").first.evaluate("a => a.pathname"))
        for path in dict.fromkeys(paths):
            page.goto(path)
            assert_loaded_cleanly(staff, path)
    finally:
        staff.close()
