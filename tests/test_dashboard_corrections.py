"""Correcting a read's plate from the dashboard's detection dialog, in a real
browser against the production server (and, for the sites view, a real
`manage.py follow_visits`), at 1280 and 390 px.

A user with `change detection` gets a plate field in the dialog that PATCHes
/api/detections/{id}/ with the page's session and CSRF token, and sees the
API's refusal beside the field; every open dashboard follows the socket's
`detection_updated`, and the sites view follows the visit events the engine
derives from the correction. Anyone else gets no field, and the API refuses
them with the page's session too.

The browser set-up is tests/test_dashboard.py's; no sleeps: every wait is
Playwright's auto-waiting `expect` with a deadline, or `wait_until` on the API.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import global_settings
from playwright.sync_api import expect
from processes import wait_until
from rest_framework.authtoken.models import Token
from test_dashboard import PASSWORD, PHONE, Watched, chromium
from test_dashboard_sites import DESKTOP, LIVE_MS, assert_no_horizontal_scroll, field, log_in, read, visit_engine

from detections.models import Camera
from detections.sites import edits

CORRECTOR = "corrector"
OPERATOR = "operator"  # may watch the dashboard, may not correct
WATCHER = "site-watcher"  # may view visits
SIZES = {
    "desktop": {"viewport": DESKTOP},
    "phone": {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
}
MISREAD = "34ABC129"
RIGHT = "34ABC123"


@pytest.fixture
def people(transactional_db, django_user_model, settings) -> dict[str, str]:
    """The users, made before the server and Chromium start; their API tokens by name."""
    from django.contrib.auth.models import Permission

    # The server process checks passwords with Django's own hashers (conftest.py).
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    grants = {CORRECTOR: "change_detection", OPERATOR: None, WATCHER: "view_visit"}
    tokens = {}
    for username, codename in grants.items():
        user = django_user_model.objects.create_user(username, password=PASSWORD)
        if codename:
            user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="detections"))
        tokens[username] = Token.objects.create(user=user).key
    return tokens


@pytest.fixture
def strict_depot(transactional_db, cameras):
    """gate-1 in, gate-2 out, and no pairing by look-alike plates (max_edits 0): a
    misread entry stays open until someone corrects it (docs/sites.md, "Corrections")."""
    return edits.site_create(
        name="Depot A",
        max_edits=0,
        since=datetime.now(UTC) - timedelta(days=1),
        cameras=[
            edits.CameraRole(Camera.objects.get(name="gate-1"), "entry"),
            edits.CameraRole(Camera.objects.get(name="gate-2"), "exit"),
        ],
    )


@pytest.fixture(params=list(SIZES))
def size(request) -> str:
    return request.param


def stored_plate(server, token: str, detection_id: int) -> str:
    with server.http(token) as http:
        response = http.get(f"/api/detections/{detection_id}/")
    assert response.status_code == 200, response.text
    return response.json()["plate"]


def open_detail(page, detection_id: int):
    page.locator(f'#feed .feed-item[data-id="{detection_id}"] button').click()
    expect(page.locator("#detail")).to_be_visible()


def correct_in_the_dialog(page, plate: str):
    page.fill("#detail-plate", plate)
    page.locator("#detail-save").click()


def script_errors(watched) -> list[str]:
    """The page's errors but Chromium's line for each refused request (`watched.failed` has those)."""
    return [error for error in watched.errors if not error.startswith("Failed to load resource:")]


def assert_the_dialog_fits(page):
    overflow = page.evaluate(
        """() => {
            const dialog = document.getElementById("detail");
            const right = dialog.getBoundingClientRect().right;
            const wide = [...dialog.querySelectorAll("*")]
                .filter((element) => element.getBoundingClientRect().right > right + 0.5)
                .map((element) => `${element.tagName.toLowerCase()}#${element.id}.${element.className}`);
            return {scroll: dialog.scrollWidth, client: dialog.clientWidth, wide};
        }"""
    )
    assert overflow["scroll"] <= overflow["client"], f"the dialog scrolls sideways: {overflow}"


def test_a_correction_from_the_dialog_is_stored_and_every_open_dashboard_follows(people, server, size):
    detection = read(server, MISREAD, "gate-1")
    with chromium() as browser:
        corrector = Watched(browser, server, **SIZES[size])
        operator = Watched(browser, server, viewport=DESKTOP)
        page = log_in(corrector, CORRECTOR, path="/")
        other = log_in(operator, OPERATOR, path="/")
        # Another operator has the same read open.
        open_detail(other, detection["id"])
        expect(other.locator("#detail-title")).to_have_text(f"Car · {MISREAD}")

        open_detail(page, detection["id"])
        expect(page.locator("#detail-plate")).to_have_value(MISREAD)
        correct_in_the_dialog(page, f"  {RIGHT} ")
        expect(page.locator("#detail-plate-status")).to_have_text("Saved")
        expect(page.locator("#detail-plate")).to_have_value(RIGHT)  # as stored: without the spaces
        expect(page.locator("#detail-title")).to_have_text(f"Car · {RIGHT}")
        expect(page.locator("#detail-plate-error")).to_be_hidden()
        expect(page.locator(f'#feed .feed-item[data-id="{detection["id"]}"] .plate')).to_have_text(RIGHT)
        assert stored_plate(server, people[OPERATOR], detection["id"]) == RIGHT
        if size == "phone":
            assert_the_dialog_fits(page)
        corrector.screenshot(f"correction-saved-{size}.png")

        # The other dashboard follows the socket's detection_updated: its feed and its open dialog.
        expect(other.locator(f'#feed .feed-item[data-id="{detection["id"]}"] .plate')).to_have_text(
            RIGHT, timeout=LIVE_MS
        )
        expect(other.locator("#detail-title")).to_have_text(f"Car · {RIGHT}")
        expect(other.locator("#detail-facts")).to_contain_text(RIGHT)

        page.locator("#detail-close").click()
        if size == "phone":
            assert_no_horizontal_scroll(page)
        for watched in (corrector, operator):
            watched.assert_everything_came_from_the_server()
            assert not watched.errors, watched.errors
            assert not watched.failed, watched.failed
        corrector.close()
        operator.close()


def test_the_dialog_shows_the_apis_refusal_of_a_bad_plate_beside_the_field(people, server, size):
    detection = read(server, MISREAD, "gate-1")
    bad = "X" * 33
    with server.http(people[CORRECTOR]) as http:
        refusal = http.patch(f"/api/detections/{detection['id']}/", json={"plate": bad})
    assert refusal.status_code == 400 and refusal.json()["field"] == "plate", refusal.text
    with chromium() as browser:
        corrector = Watched(browser, server, **SIZES[size])
        page = log_in(corrector, CORRECTOR, path="/")
        open_detail(page, detection["id"])
        correct_in_the_dialog(page, bad)
        error = page.locator("#detail-plate-error")
        expect(error).to_be_visible()
        expect(error).to_have_text(refusal.json()["detail"])
        expect(page.locator("#detail-plate")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#detail-plate")).to_have_value(bad)  # kept, to be mended
        expect(page.locator("#detail-title")).to_have_text(f"Car · {MISREAD}")
        if size == "phone":
            assert_the_dialog_fits(page)
        corrector.screenshot(f"correction-refused-{size}.png")
        assert stored_plate(server, people[OPERATOR], detection["id"]) == MISREAD
        # Typing again clears the error.
        page.fill("#detail-plate", RIGHT)
        expect(error).to_be_hidden()
        expect(page.locator("#detail-plate")).not_to_have_attribute("aria-invalid", "true")
        assert corrector.failed == [f"{server.base_url}/api/detections/{detection['id']}/: 400"]
        assert not script_errors(corrector), corrector.errors
        corrector.close()


def test_a_user_without_change_detection_gets_no_field_and_the_api_refuses_the_pages_session(people, server, size):
    detection = read(server, MISREAD, "gate-1")
    with chromium() as browser:
        operator = Watched(browser, server, **SIZES[size])
        page = log_in(operator, OPERATOR, path="/")
        open_detail(page, detection["id"])
        expect(page.locator("#detail-title")).to_have_text(f"Car · {MISREAD}")
        expect(page.locator("#detail-correct")).to_have_count(0)
        expect(page.locator("#detail-plate")).to_have_count(0)
        # The page's own session and CSRF token, as the dialog would send them: refused.
        answer = page.evaluate(
            """async (id) => {
                const config = JSON.parse(document.getElementById("dashboard-config").textContent);
                const response = await fetch(`/api/detections/${id}/`, {
                    method: "PATCH",
                    credentials: "same-origin",
                    headers: {"Content-Type": "application/json", "X-CSRFToken": config.csrfToken},
                    body: JSON.stringify({plate: "34ABC123"}),
                });
                return {status: response.status, body: await response.json()};
            }""",
            detection["id"],
        )
        assert answer["status"] == 403, answer
        assert answer["body"]["error"] and "change detection" in answer["body"]["detail"], answer
        assert stored_plate(server, people[OPERATOR], detection["id"]) == MISREAD
        assert operator.failed == [f"{server.base_url}/api/detections/{detection['id']}/: 403"]
        assert not script_errors(operator), operator.errors
        operator.close()


def test_a_session_write_without_the_csrf_token_is_refused(people, server):
    """The token is what the dialog's PATCH needs: without it the corrector's own session is refused."""
    detection = read(server, MISREAD, "gate-1")
    with chromium() as browser:
        corrector = Watched(browser, server, viewport=DESKTOP)
        page = log_in(corrector, CORRECTOR, path="/")
        answer = page.evaluate(
            """async (id) => {
                const response = await fetch(`/api/detections/${id}/`, {
                    method: "PATCH", credentials: "same-origin",
                    headers: {"Content-Type": "application/json"}, body: JSON.stringify({plate: "34ABC123"}),
                });
                return {status: response.status, body: await response.json()};
            }""",
            detection["id"],
        )
        assert answer["status"] == 403 and "CSRF" in answer["body"]["detail"], answer
        assert stored_plate(server, people[OPERATOR], detection["id"]) == MISREAD
        corrector.close()


def test_a_correction_from_the_dialog_moves_a_visit_in_the_sites_view(people, strict_depot, server, size):
    site = strict_depot.pk

    def visits(state: str) -> list[dict]:
        with server.http(people[WATCHER]) as http:
            response = http.get(f"/api/sites/{site}/visits/?state={state}")
        assert response.status_code == 200, response.text
        return response.json()["results"]

    with visit_engine(server), chromium() as browser:
        watcher = Watched(browser, server, **SIZES[size])
        corrector = Watched(browser, server, **SIZES[size])
        sites = log_in(watcher, WATCHER)
        card = sites.locator(f'.site-card[data-site="{site}"]')
        opened = card.locator('[data-field="open-visits"] .visit-item')
        left = card.locator('[data-field="recent-visits"] .visit-item')
        dashboard = log_in(corrector, CORRECTOR, path="/")

        # The entry is misread: a visit opens under the wrong plate...
        entry = read(server, MISREAD, "gate-1", ago=timedelta(minutes=10))
        expect(field(card, "now")).to_have_text("1", timeout=LIVE_MS)
        expect(opened.locator('[data-field="plate"]')).to_have_text([MISREAD])
        misread_visit = opened.first.get_attribute("data-id")
        # ...and the exit, read right, pairs with nothing: a visit whose entry was missed.
        read(server, RIGHT, "gate-2")
        wait_until(lambda: len(visits("entry_missed")) == 1, True, "the exit's visit")
        expect(field(card, "now")).to_have_text("1")
        expect(left).to_have_count(0)

        open_detail(dashboard, entry["id"])
        correct_in_the_dialog(dashboard, RIGHT)
        expect(dashboard.locator("#detail-plate-status")).to_have_text("Saved")
        assert stored_plate(server, people[WATCHER], entry["id"]) == RIGHT

        # The engine pairs the corrected entry with its exit: the open visit closes,
        # keeping its id, and the stray one is removed; the sites view follows live.
        expect(field(card, "now")).to_have_text("0", timeout=LIVE_MS)
        expect(opened).to_have_count(0)
        expect(field(card, "open-empty")).to_be_visible()
        expect(left).to_have_count(1)
        expect(left.first).to_have_attribute("data-id", misread_visit)
        expect(field(left.first, "plate")).to_have_text(RIGHT)
        expect(field(left.first, "duration")).to_have_text(re.compile(r"^(9|10) min$"))
        assert visits("entry_missed") == []
        # The day's dwell takes the visit that ended.
        expect(field(card, "dwell-note")).to_have_text(re.compile(r"^1 ended"), timeout=LIVE_MS)
        watcher.screenshot(f"correction-sites-{size}.png", full_page=True)

        if size == "phone":
            assert_no_horizontal_scroll(sites)
            assert_no_horizontal_scroll(dashboard)
        for watched in (watcher, corrector):
            watched.assert_everything_came_from_the_server()
            assert not watched.errors, watched.errors
            assert not watched.failed, watched.failed
        watcher.close()
        corrector.close()


def test_the_sites_api_refuses_the_session_of_a_user_without_view_visit(people, strict_depot, server):
    """The rest of it (no Sites link, a 403 at /sites/) is in tests/test_dashboard_sites.py."""
    with chromium() as browser:
        operator = Watched(browser, server, viewport=PHONE, is_mobile=True, has_touch=True)
        page = log_in(operator, OPERATOR, path="/")
        for path in (
            "/api/sites/",
            f"/api/sites/{strict_depot.pk}/visits/",
            f"/api/sites/{strict_depot.pk}/occupancy/",
        ):
            response = page.request.get(path)
            assert response.status == 403, path
            assert "view visit" in response.json()["detail"], path
        operator.close()
