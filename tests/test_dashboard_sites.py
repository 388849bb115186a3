"""The sites view at /sites/, in a real browser against a real server and a
real visit engine (`manage.py follow_visits`, as docker-compose.yml's
`visits`): occupancy against capacity, who is inside longest first with
overstays marked, what left lately with its entry and exit snapshots side by
side, and dwell, all following the socket's `visit` and `site` events.

The browser set-up is tests/test_dashboard.py's. No sleeps: every wait is
Playwright's auto-waiting `expect` (or `wait_for_function`) with a deadline.
"""

import re
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx
import pytest
from conftest import ROOT, detection_body, make_user_token
from django.conf import global_settings
from playwright.sync_api import expect
from processes import end_process, wait_until
from rest_framework.authtoken.models import Token
from test_dashboard import PASSWORD, PHONE, SLOW_MS, Watched, chromium, post

from detections.models import Camera
from detections.sites import edits

WATCHER = "site-watcher"
BYSTANDER = "bystander"
CAPACITY = 3
MAX_STAY = 3600
# The widths the issue names: a desk screen and a phone.
DESKTOP = {"width": 1280, "height": 900}
_tracks = count(1)
LIVE_MS = 10000  # a read, then the engine's step, then the socket: well within this


@pytest.fixture
def depot(transactional_db, cameras):
    """Made before the server starts: gate-1 is the way in, gate-2 the way out."""
    return edits.site_create(
        name="Depot A",
        capacity=CAPACITY,
        max_stay_seconds=MAX_STAY,
        since=datetime.now(UTC) - timedelta(days=1),
        cameras=[
            edits.CameraRole(Camera.objects.get(name="gate-1"), "entry"),
            edits.CameraRole(Camera.objects.get(name="gate-2"), "exit"),
        ],
    )


@pytest.fixture
def users(transactional_db, django_user_model, settings):
    from django.contrib.auth.models import Permission

    # The server process checks passwords with Django's own hashers (conftest.py).
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    watcher = django_user_model.objects.create_user(WATCHER, password=PASSWORD)
    watcher.user_permissions.add(Permission.objects.get(codename="view_visit", content_type__app_label="detections"))
    django_user_model.objects.create_user(BYSTANDER, password=PASSWORD)


@contextmanager
def visit_engine(server):
    """`manage.py follow_visits` beside the server, on its database and channel layer."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "follow_visits", "--poll", "0.2"],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        end_process(process)
        if process.stdout:
            print("--- visit engine output ---\n" + process.stdout.read())


@pytest.fixture(params=["desktop", "phone"])
def watched(request, depot, users, server):
    """The page at each width; the engine and Chromium stop before the database is flushed."""
    sizes = {
        "desktop": {"viewport": DESKTOP},
        "phone": {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
    }
    with visit_engine(server), chromium() as browser:
        watched = Watched(browser, server, **sizes[request.param])
        watched.width = request.param
        yield watched
        watched.close()


def log_in(watched: Watched, username: str, path: str = "/sites/"):
    page = watched.page
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    expect(page).to_have_url(f"{watched.server.base_url}{path}")
    watched.expect_connection("connected")
    return page


def read(server, plate: str, camera: str, *, ago: timedelta = timedelta(0)) -> dict:
    moment = (datetime.now(UTC) - ago).isoformat().replace("+00:00", "Z")
    return post(server, detection_body(id=f"site-{next(_tracks)}", plate=plate, camera=camera, time=moment))


def field(element, name: str):
    return element.locator(f'[data-field="{name}"]')


def assert_no_horizontal_scroll(page):
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


def test_the_sites_view_follows_visits_opening_and_closing_and_the_site_filling(watched, depot, server):
    page = log_in(watched, WATCHER)
    card = page.locator(f'.site-card[data-site="{depot.pk}"]')
    expect(field(card, "name")).to_have_text("Depot A")
    expect(field(card, "now")).to_have_text("0")
    expect(field(card, "capacity")).to_have_text(f" / {CAPACITY}")
    expect(field(card, "open-empty")).to_be_visible()
    opened = card.locator('[data-field="open-visits"] .visit-item')

    # In since two hours, past the site's one-hour limit: an overstay, and the longest stay.
    read(server, "34 OLD 001", "gate-1", ago=timedelta(hours=2))
    expect(field(card, "now")).to_have_text("1", timeout=LIVE_MS)
    expect(opened).to_have_count(1)
    expect(opened.first).to_have_class(re.compile("is-overstay"))
    expect(field(opened.first, "overstay")).to_be_visible()
    expect(field(card, "open-note")).to_have_text("1 overstaying")

    read(server, "34ABC123", "gate-1", ago=timedelta(minutes=5))
    read(server, "06XYZ987", "gate-1")
    expect(field(card, "now")).to_have_text("3", timeout=LIVE_MS)
    # Longest first, and only the first past its limit.
    expect(opened.locator('[data-field="plate"]')).to_have_text(["34 OLD 001", "34ABC123", "06XYZ987"])
    expect(field(opened.nth(1), "overstay")).to_be_hidden()
    # The third fills the site.
    expect(field(card, "full")).to_be_visible()
    expect(card).to_have_class(re.compile("is-full"))
    watched.screenshot(f"sites-full-{watched.width}.png", full_page=True)

    # 34ABC123 leaves: room again, and the visit moves to "Left recently".
    read(server, "34ABC123", "gate-2")
    expect(field(card, "now")).to_have_text("2", timeout=LIVE_MS)
    expect(field(card, "full")).to_be_hidden()
    expect(opened.locator('[data-field="plate"]')).to_have_text(["34 OLD 001", "06XYZ987"])
    left = card.locator('[data-field="recent-visits"] .visit-item')
    expect(left).to_have_count(1)
    expect(field(left.first, "plate")).to_have_text("34ABC123")
    expect(field(left.first, "duration")).to_have_text(re.compile(r"^[45] min$"))
    # Dwell for the day takes the visit that ended.
    expect(field(card, "dwell-note")).to_have_text(re.compile(r"^1 ended"), timeout=LIVE_MS)
    page.wait_for_function(
        "id => sitesView.charts()[id].dwell.reduce((a, b) => a + b, 0) === 1", arg=depot.pk, timeout=SLOW_MS
    )
    # The occupancy chart's current hour has seen three inside.
    page.wait_for_function("id => Math.max(...sitesView.charts()[id].occupancy) === 3", arg=depot.pk)

    # Its entry and exit snapshots, side by side.
    left.first.locator("button").click()
    dialog = page.locator("#visit-detail")
    expect(dialog).to_be_visible()
    expect(page.locator("#visit-title")).to_have_text("34ABC123 · Depot A")
    for end, camera in (("entry", "gate-1"), ("exit", "gate-2")):
        figure = page.locator(f"#visit-{end}")
        expect(field(figure, "camera")).to_have_text(camera)
        expect(field(figure, "image")).to_be_visible(timeout=SLOW_MS)
        page.wait_for_function(
            "id => document.querySelector(`#visit-${id} img`).naturalWidth > 0", arg=end, timeout=SLOW_MS
        )
    entry_box = page.locator("#visit-entry").bounding_box()
    exit_box = page.locator("#visit-exit").bounding_box()
    assert abs(entry_box["y"] - exit_box["y"]) < 1 and entry_box["x"] + entry_box["width"] <= exit_box["x"]
    watched.screenshot(f"sites-visit-{watched.width}.png")
    page.locator("#visit-close").click()
    expect(dialog).to_be_hidden()

    if watched.width == "phone":
        assert_no_horizontal_scroll(page)
    watched.assert_everything_came_from_the_server()
    assert not watched.errors, watched.errors
    assert not watched.failed, watched.failed


@pytest.fixture
def bystander_page(depot, users, server):
    with chromium() as browser:
        watched = Watched(browser, server, viewport=DESKTOP)
        yield watched
        watched.close()


def test_a_viewer_without_view_visit_is_not_offered_the_sites_view_and_cannot_open_it(bystander_page, server):
    page = log_in(bystander_page, BYSTANDER, path="/")
    expect(page.locator("nav.views")).to_contain_text("Traffic")
    expect(page.locator("#nav-sites")).to_have_count(0)
    response = page.goto("/sites/")
    assert response.status == 403


def test_the_watcher_is_offered_the_sites_view_from_the_dashboard(depot, users, server):
    with chromium() as browser:
        watched = Watched(browser, server, viewport=DESKTOP)
        page = log_in(watched, WATCHER, path="/")
        page.locator("#nav-sites").click()
        expect(page).to_have_url(f"{server.base_url}/sites/")
        expect(page.locator(".site-card")).to_have_count(1)
        expect(page.locator('nav.views a[aria-current="page"]')).to_have_text("Sites")
        watched.close()


def test_the_sites_page_needs_a_login(server):
    response = httpx.get(server.base_url + "/sites/", follow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/login/?next=/sites/"


@pytest.fixture
def site_manager(transactional_db):
    """A token that may define sites, made before the browser starts (its event loop forbids the ORM)."""
    from django.contrib.auth.models import Permission

    token = make_user_token("site-manager")
    user = Token.objects.get(key=token).user
    user.user_permissions.add(Permission.objects.get(codename="manage_sites", content_type__app_label="detections"))
    return token


def test_a_site_made_while_the_page_is_open_appears_with_its_first_visit(depot, users, site_manager, server):
    with visit_engine(server), chromium() as browser:
        watched = Watched(browser, server, viewport=DESKTOP)
        page = log_in(watched, WATCHER)
        expect(page.locator(".site-card")).to_have_count(1)
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        with server.http(site_manager) as http:
            made = http.post(
                "/api/sites/", json={"name": "Yard", "since": since, "cameras": [{"camera": "yard", "role": "both"}]}
            )
        assert made.status_code == 201, made.text

        def deriving() -> bool:
            with server.http(site_manager) as http:
                return http.get(f"/api/sites/{made.json()['id']}/").json()["deriving"]

        # A read the site's first derivation takes in is history, which raises no event.
        wait_until(deriving, False, "the new site's derivation")
        read(server, "34YRD001", "yard")
        card = page.locator(f'.site-card[data-site="{made.json()["id"]}"]')
        expect(field(card, "now")).to_have_text("1", timeout=LIVE_MS)
        expect(card.locator('[data-field="open-visits"] [data-field="plate"]')).to_have_text(["34YRD001"])
        # Events after the reload still land on the new state.
        read(server, "34YRD002", "yard")
        expect(field(card, "now")).to_have_text("2", timeout=LIVE_MS)
        expect(page.locator(".site-card")).to_have_count(2)
        assert not watched.errors, watched.errors
        watched.close()


def test_visits_that_changed_while_the_socket_was_down_are_replayed_on_reconnect(depot, users, site_manager, server):
    with visit_engine(server), chromium() as browser:
        watched = Watched(browser, server, viewport=PHONE, is_mobile=True, has_touch=True)
        page = log_in(watched, WATCHER)
        card = page.locator(f'.site-card[data-site="{depot.pk}"]')
        read(server, "34ABC123", "gate-1")
        expect(field(card, "now")).to_have_text("1", timeout=LIVE_MS)

        seq_before = page.evaluate("sitesView.seq")
        page.evaluate("() => { sitesView.holdReconnects(); sitesView.socket.close(); }")
        watched.expect_connection("reconnecting")
        read(server, "34ABC123", "gate-2")

        def inside() -> int:
            with server.http(site_manager) as http:
                return http.get(f"/api/sites/{depot.pk}/occupancy/").json()["now"]

        wait_until(lambda: inside() == 0, True, "the visit's close")
        expect(field(card, "now")).to_have_text("1")  # no socket, no event
        sockets_before = len(watched.sockets)
        page.evaluate("sitesView.releaseReconnects()")
        watched.expect_connection("connected")
        expect(field(card, "now")).to_have_text("0", timeout=SLOW_MS)
        expect(card.locator('[data-field="recent-visits"] [data-field="plate"]')).to_have_text(["34ABC123"])
        assert watched.sockets[sockets_before:] == [f"{server.ws_url}/ws?after={seq_before}"]
        assert not watched.errors, watched.errors
        watched.close()
