"""/api/routes/ (protocol.md, "Routes and journeys"): staff with 'manage
routes' define routes, viewers with 'view journey' read them; bad routes are
400s that name the field; an edit is a new revision for the engine to derive."""

import pytest
from alert_helpers import client_with
from conftest import api_client

from detections.models import Camera, Route

BRIDGE = {
    "name": "Bridge northbound",
    "from_camera": "bridge-s",
    "to_camera": "bridge-n",
    "distance_m": 2400,
    "max_seconds": 1800,
    "speed_limit_kmh": 80,
    "repeat_seconds": 60,
    "since": None,
    "active": True,
}


@pytest.fixture
def bridge_cameras(db):
    return {name: Camera.objects.create(name=name) for name in ("bridge-s", "bridge-n", "tunnel")}


@pytest.fixture
def planner(bridge_cameras):
    return client_with("planner", "manage_routes")


@pytest.fixture
def analyst(bridge_cameras):
    return client_with("analyst", "view_journey")


def test_a_route_is_created_read_listed_changed_and_deleted(planner, analyst):
    made = planner.post("/api/routes/", BRIDGE, format="json")
    assert made.status_code == 201, made.json()
    route = made.json()
    assert {key: route[key] for key in BRIDGE} == BRIDGE
    assert route["derived"] is False  # the engine has not derived it yet
    assert analyst.get(f"/api/routes/{route['id']}/").json()["name"] == "Bridge northbound"
    assert [r["id"] for r in analyst.get("/api/routes/").json()["results"]] == [route["id"]]
    changed = planner.patch(f"/api/routes/{route['id']}", {"max_seconds": 900}, format="json")
    assert changed.status_code == 200 and changed.json()["max_seconds"] == 900
    assert planner.delete(f"/api/routes/{route['id']}/").status_code == 204
    assert not Route.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"from_camera": "nowhere"}, "from_camera"),
        ({"to_camera": "nowhere"}, "to_camera"),
        ({"to_camera": "bridge-s"}, "to_camera"),
        ({"distance_m": 0}, "distance_m"),
        ({"distance_m": -5}, "distance_m"),
        ({"max_seconds": 0}, "max_seconds"),
        ({"max_seconds": -1}, "max_seconds"),
        ({"speed_limit_kmh": 0}, "speed_limit_kmh"),
        ({"repeat_seconds": -1}, "repeat_seconds"),
        ({"name": "  "}, "name"),
        ({"name": 7}, "name"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_a_bad_route_is_a_400_naming_the_field(planner, change, field):
    response = planner.post("/api/routes/", {**BRIDGE, **change}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Route.objects.exists()


def test_a_change_that_makes_both_ends_one_camera_is_refused(planner):
    route = planner.post("/api/routes/", BRIDGE, format="json").json()
    response = planner.patch(f"/api/routes/{route['id']}/", {"from_camera": "bridge-n"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "to_camera"


def test_only_name_and_the_cameras_are_required(planner):
    made = planner.post("/api/routes/", {"name": "r", "from_camera": "bridge-s", "to_camera": "tunnel"}, format="json")
    assert made.status_code == 201
    route = made.json()
    assert (route["max_seconds"], route["repeat_seconds"], route["distance_m"], route["active"]) == (
        1800,
        60,
        None,
        True,
    )


def test_an_edit_that_changes_what_pairs_is_a_new_revision_and_a_new_name_is_not(planner):
    route = planner.post("/api/routes/", BRIDGE, format="json").json()
    Route.objects.filter(pk=route["id"]).update(derived_revision=1)
    planner.patch(f"/api/routes/{route['id']}/", {"name": "Bridge north"}, format="json")
    assert Route.objects.values_list("revision", "derived_revision").get() == (1, 1)
    planner.patch(f"/api/routes/{route['id']}/", {"since": "2026-01-01T00:00:00Z"}, format="json")
    assert Route.objects.values_list("revision", "derived_revision").get() == (2, 1)
    assert planner.get(f"/api/routes/{route['id']}/").json()["derived"] is False


def test_reading_needs_view_journey_and_writing_manage_routes(bridge_cameras, planner, analyst, credentials):
    Route.objects.create(name="r", from_camera=bridge_cameras["bridge-s"], to_camera=bridge_cameras["bridge-n"])
    assert analyst.post("/api/routes/", BRIDGE, format="json").status_code == 403
    viewer = api_client(credentials.viewer)
    assert viewer.get("/api/routes/").status_code == 403
    assert api_client().get("/api/routes/").status_code == 401
    assert api_client(credentials.device).get("/api/routes/").status_code == 403


def test_routes_are_never_public(bridge_cameras, settings):
    settings.PUBLIC_FEED = True
    assert api_client().get("/api/routes/").status_code in (401, 403)
    assert api_client().get("/api/od-matrix/?cameras=bridge-s").status_code in (401, 403)


def test_the_admin_refuses_a_route_from_a_camera_to_itself(bridge_cameras, admin_user):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = admin_user
    form_class = site._registry[Route].get_form(request)
    camera = bridge_cameras["bridge-s"].pk
    form = form_class(
        data={
            "name": "loop",
            "from_camera": camera,
            "to_camera": camera,
            "max_seconds": 1800,
            "repeat_seconds": 60,
            "active": "on",
        }
    )
    assert not form.is_valid() and "to_camera" in form.errors
    form = form_class(
        data={
            "name": "slow",
            "from_camera": camera,
            "to_camera": bridge_cameras["tunnel"].pk,
            "distance_m": "0",
            "max_seconds": 1800,
            "repeat_seconds": 60,
        }
    )
    assert not form.is_valid() and "distance_m" in form.errors
