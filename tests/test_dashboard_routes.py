"""The routes view at /routes/, in a real browser against a real server and a
real journey engine (`manage.py follow_journeys`, as docker-compose.yml's
`journeys`): per route the travel time now against the usual for this hour,
today's travel times and the latest journeys, following the socket's `journey`
events; and the origin-destination heat map, cell for cell the API's matrix.

The browser set-up is tests/test_dashboard.py's, the log-in and the phone
check tests/test_dashboard_sites.py's. No sleeps: every wait is Playwright's
auto-waiting `expect` (or `wait_for_function`) with a deadline.
"""

from datetime import UTC, datetime, timedelta
from itertools import count

import httpx
import pytest
from conftest import detection_body, make_user_token, store_detection
from django.conf import global_settings
from journey_helpers import EngineProcess
from playwright.sync_api import expect
from processes import wait_until
from test_dashboard import PASSWORD, PHONE, SLOW_MS, Watched, chromium, post
from test_dashboard_sites import DESKTOP, LIVE_MS, assert_no_horizontal_scroll, field, log_in

from detections.journeys import engine
from detections.models import Camera, Route

WATCHER = "road-watcher"
BYSTANDER = "bystander"
WEEKS = 4
_tracks = count(1)
# Today's chart holds these medians (the slots with a journey), in any order.
CHART_HOLDS = """([id, medians]) => {
    const held = routesView.charts()[id].filter((v) => v !== null).sort((a, b) => a - b);
    return JSON.stringify(held) === JSON.stringify(medians);
}"""
# The matrix the page drew last (the URL it read, the answer) and its cells, row by row:
# [from, to, count, text]; read at once, so a redraw cannot come in between.
DRAWN = """() => ({
    shown: routesView.matrix,
    cells: [...document.querySelectorAll("#od-table tbody tr")].map((row) =>
        [...row.querySelectorAll("td")].map((cell) =>
            [cell.dataset.from, cell.dataset.to, Number(cell.dataset.count), cell.textContent])),
})"""


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def road(transactional_db, cameras):
    """gate-1 to gate-2, 1 km, with history made before the server starts: in
    each of the four weeks before, three journeys of about a minute in the
    hour before this moment (the usual: 60 s), and two of 90 s in the last hour
    (now: 90 s, half as long again)."""
    now = datetime.now(UTC)
    route = Route.objects.create(
        name="Road north",
        from_camera=Camera.objects.get(name="gate-1"),
        to_camera=Camera.objects.get(name="gate-2"),
        distance_m=1000,
        since=now - timedelta(weeks=WEEKS + 1),
    )
    trips = [
        (now - timedelta(weeks=k, minutes=minutes), seconds)
        for k in range(1, WEEKS + 1)
        for minutes, seconds in ((50, 55), (30, 60), (10, 65))
    ]
    trips += [(now - timedelta(minutes=40), 90), (now - timedelta(minutes=20), 90)]
    for n, (ended, seconds) in enumerate(trips):
        plate = f"06HIS{n:03}"
        store_detection(
            f"his-{n}-a", camera="gate-1", detected_at=ended - timedelta(seconds=seconds), plate=plate, with_image=False
        )
        store_detection(f"his-{n}-b", camera="gate-2", detected_at=ended, plate=plate, with_image=False)
    engine.catch_up()  # the route derived, history raising no event
    return route


@pytest.fixture
def users(transactional_db, django_user_model, settings):
    from django.contrib.auth.models import Permission

    # The server process checks passwords with Django's own hashers (conftest.py).
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    watcher = django_user_model.objects.create_user(WATCHER, password=PASSWORD)
    watcher.user_permissions.add(Permission.objects.get(codename="view_journey", content_type__app_label="detections"))
    # Sites, not journeys: offered the sites view only.
    bystander = django_user_model.objects.create_user(BYSTANDER, password=PASSWORD)
    bystander.user_permissions.add(Permission.objects.get(codename="view_visit", content_type__app_label="detections"))


@pytest.fixture
def analyst_token(transactional_db):
    """A token that may view journeys, made before the browser starts (its event loop forbids the ORM)."""
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token

    token = make_user_token("analyst")
    Token.objects.get(key=token).user.user_permissions.add(
        Permission.objects.get(codename="view_journey", content_type__app_label="detections")
    )
    return token


@pytest.fixture(params=["desktop", "phone"])
def watched(request, road, users, analyst_token, server):
    """The page at each width, in UTC; the engine and Chromium stop before the database is flushed."""
    sizes = {
        "desktop": {"viewport": DESKTOP},
        "phone": {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
    }
    with EngineProcess(), chromium() as browser:
        watched = Watched(browser, server, timezone_id="UTC", **sizes[request.param])
        watched.width = request.param
        yield watched
        watched.close()


def trip(server, plate: str, seconds: float) -> None:
    """A start read `seconds` ago at gate-1, then the end read now at gate-2."""
    now = datetime.now(UTC)
    for camera, moment in (("gate-1", now - timedelta(seconds=seconds)), ("gate-2", now)):
        post(server, detection_body(id=f"road-{next(_tracks)}", plate=plate, camera=camera, time=iso(moment)))


def test_the_routes_view_shows_now_against_the_usual_journeys_live_and_the_matrix(watched, road, analyst_token, server):
    page = log_in(watched, WATCHER, path="/routes/")
    card = page.locator(f'.route-card[data-route="{road.pk}"]')
    expect(field(card, "name")).to_have_text("Road north")
    expect(field(card, "ends")).to_have_text("gate-1 → gate-2 · 1 km")
    # Now: the last hour's two journeys of 90 s; usual: twelve of 55, 60 and 65 s in the weeks before.
    expect(field(card, "now")).to_have_text("1 min 30 s")
    expect(field(card, "now-count")).to_have_text("(2 journeys)")
    expect(field(card, "usual")).to_have_text("1 min 00 s")
    expect(field(card, "usual-count")).to_have_text(f"(12 journeys, {WEEKS} weeks before)")
    expect(field(card, "trend")).to_have_text("+50% slower")
    expect(card).to_have_attribute("data-trend", "slower")
    rows = card.locator('[data-field="journeys"] .journey-item')
    expect(rows).to_have_count(10)  # the latest ten of fourteen
    expect(field(rows.first, "plate")).to_have_text("06HIS013")

    # A journey whose end read is posted now is on the page within seconds, on top.
    trip(server, "34NEW001", 72)
    expect(field(rows.first, "plate")).to_have_text("34NEW001", timeout=LIVE_MS)
    expect(field(rows.first, "seconds")).to_have_text("1 min 12 s")
    expect(field(rows.first, "speed")).to_have_text("50 km/h")
    expect(rows).to_have_count(10)
    # The figures are read again: three in the last hour now, the median still 90 s.
    expect(field(card, "now-count")).to_have_text("(3 journeys)", timeout=LIVE_MS)

    # Today's chart holds what the API's 15-minute series says for today.
    with server.http(analyst_token) as http:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        series = http.get(
            f"/api/routes/{road.pk}/travel-times/", params={"bucket": "15m", "since": iso(midnight)}
        ).json()["series"]
    medians = sorted(bucket["median_seconds"] for bucket in series)
    page.wait_for_function(CHART_HOLDS, arg=[road.pk, medians], timeout=SLOW_MS)

    # The heat map: cell for cell the matrix the API answers for the same question.
    # At first, every camera (there are few), over the last 24 hours.
    page.wait_for_function("routesView.matrix !== null", timeout=SLOW_MS)
    drawn = page.evaluate(DRAWN)
    with server.http(analyst_token) as http:
        answer = http.get(drawn["shown"]["url"]).json()
    assert answer["cameras"] == ["gate-1", "gate-2", "yard"]
    cells = drawn["cells"]
    assert [[c for _, _, c, _ in row] for row in cells] == answer["counts"]
    assert [[(f, t) for f, t, _, _ in row] for row in cells] == [
        [(origin, destination) for destination in answer["cameras"]] for origin in answer["cameras"]
    ]
    assert [[int(text) for *_, text in row] for row in cells] == answer["counts"]
    assert answer["counts"][0][1] >= 2  # the last hour's trips, gate-1 then gate-2

    # Another question: two cameras, the last hour; the table follows.
    page.locator('#od-cameras input[value="yard"]').uncheck()
    page.select_option("#od-range", "1")
    page.locator("#od-form button[type=submit]").click()
    page.wait_for_function("routesView.matrix.cameras.length === 2")
    drawn = page.evaluate(DRAWN)
    assert "since=" in drawn["shown"]["url"] and "until=" in drawn["shown"]["url"]
    with server.http(analyst_token) as http:
        answer = http.get(drawn["shown"]["url"]).json()
    assert answer["cameras"] == ["gate-1", "gate-2"]
    assert [[count for _, _, count, _ in row] for row in drawn["cells"]] == answer["counts"]
    assert answer["counts"][0][1] >= 3  # the last hour's three trips

    watched.screenshot(f"routes-{watched.width}.png", full_page=True)
    if watched.width == "phone":
        assert_no_horizontal_scroll(page)
    watched.assert_everything_came_from_the_server()
    assert not watched.errors, watched.errors
    assert not watched.failed, watched.failed


@pytest.fixture
def desk(road, users, server):
    """The page at the desk's width only, with the engine."""
    with EngineProcess(), chromium() as browser:
        watched = Watched(browser, server, viewport=DESKTOP, timezone_id="UTC")
        yield watched
        watched.close()


def test_a_journey_undone_by_a_deleted_read_leaves_the_list_live(desk, road, server):
    watched = desk
    page = log_in(watched, WATCHER, path="/routes/")
    card = page.locator(f'.route-card[data-route="{road.pk}"]')
    rows = card.locator('[data-field="journeys"] .journey-item')
    expect(field(rows.first, "plate")).to_have_text("06HIS013")
    with server.device() as http:
        now = datetime.now(UTC)
        start = http.post(
            "/api/detect",
            json=detection_body(id="undo-a", plate="34UND001", camera="gate-1", time=iso(now - timedelta(seconds=80))),
        )
        http.post("/api/detect", json=detection_body(id="undo-b", plate="34UND001", camera="gate-2", time=iso(now)))
    expect(field(rows.first, "plate")).to_have_text("34UND001", timeout=LIVE_MS)
    with server.staff() as http:
        assert http.delete(f"/api/detections/{start.json()['id']}/").status_code == 204
    expect(field(rows.first, "plate")).to_have_text("06HIS013", timeout=LIVE_MS)
    expect(card.locator('.journey-item [data-field="plate"]', has_text="34UND001")).to_have_count(0)
    assert not watched.errors, watched.errors


@pytest.fixture
def bystander_page(road, users, server):
    with chromium() as browser:
        watched = Watched(browser, server, viewport=DESKTOP)
        yield watched
        watched.close()


def test_a_viewer_without_view_journey_is_not_offered_the_routes_view_and_the_api_refuses_it(
    bystander_page, road, server
):
    page = log_in(bystander_page, BYSTANDER, path="/")
    expect(page.locator("#nav-sites")).to_be_visible()
    expect(page.locator("#nav-routes")).to_have_count(0)
    page.goto("/sites/")
    expect(page.locator("#nav-routes")).to_have_count(0)
    assert page.goto("/routes/").status == 403
    # The same session on the API the page reads.
    for path in (
        "/api/routes/",
        f"/api/routes/{road.pk}/journeys/",
        f"/api/routes/{road.pk}/travel-time-now/",
        f"/api/routes/{road.pk}/travel-times/",
        "/api/od-matrix/?cameras=gate-1,gate-2",
    ):
        assert page.request.get(path).status == 403, path


def test_the_watcher_is_offered_the_routes_view_from_the_dashboard(road, users, server):
    with chromium() as browser:
        watched = Watched(browser, server, viewport=DESKTOP)
        page = log_in(watched, WATCHER, path="/")
        expect(page.locator("#nav-sites")).to_have_count(0)  # journeys, not visits
        page.locator("#nav-routes").click()
        expect(page).to_have_url(f"{server.base_url}/routes/")
        expect(page.locator(".route-card")).to_have_count(1)
        expect(page.locator('nav.views a[aria-current="page"]')).to_have_text("Routes")
        watched.close()


def test_the_routes_page_needs_a_login(server):
    response = httpx.get(server.base_url + "/routes/", follow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/login/?next=/routes/"


def test_journeys_missed_while_the_socket_was_down_are_replayed_on_reconnect(road, users, analyst_token, server):
    with EngineProcess(), chromium() as browser:
        watched = Watched(browser, server, viewport=PHONE, is_mobile=True, has_touch=True, timezone_id="UTC")
        page = log_in(watched, WATCHER, path="/routes/")
        card = page.locator(f'.route-card[data-route="{road.pk}"]')
        rows = card.locator('[data-field="journeys"] .journey-item')
        expect(field(rows.first, "plate")).to_have_text("06HIS013")
        seq_before = page.evaluate("routesView.seq")
        page.evaluate("() => { routesView.holdReconnects(); routesView.socket.close(); }")
        watched.expect_connection("reconnecting")
        trip(server, "34GAP001", 70)

        def journeys() -> list[str]:
            with server.http(analyst_token) as http:
                return [j["plate"] for j in http.get(f"/api/routes/{road.pk}/journeys/").json()["results"]]

        wait_until(lambda: journeys()[0], "34GAP001", "the journey's pairing")
        expect(field(rows.first, "plate")).to_have_text("06HIS013")  # no socket, no event
        sockets_before = len(watched.sockets)
        page.evaluate("routesView.releaseReconnects()")
        watched.expect_connection("connected")
        expect(field(rows.first, "plate")).to_have_text("34GAP001", timeout=SLOW_MS)
        assert watched.sockets[sockets_before:] == [f"{server.ws_url}/ws?after={seq_before}"]
        assert not watched.errors, watched.errors
        watched.close()
