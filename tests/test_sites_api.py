"""/api/sites/: sites and their cameras' roles, validated field by field;
who may read and who may change them; `direction` on ingest."""

import pytest
from alert_helpers import client_with
from helpers import post_detection

from detections.models import Detection, Site

SITE = {
    "name": "Depot A",
    "tz": "Europe/Istanbul",
    "capacity": 120,
    "cameras": [{"camera": "gate-1", "role": "entry"}, {"camera": "gate-2", "role": "exit"}],
    "max_stay_seconds": 7200,
}


@pytest.fixture
def site_manager(cameras):
    return client_with("site-manager", "manage_sites")


@pytest.fixture
def visit_viewer(cameras):
    return client_with("visit-viewer", "view_visit")


def test_a_site_is_created_with_its_defaults_and_read_back(site_manager, visit_viewer):
    response = site_manager.post("/api/sites/", {"name": "Depot A", "cameras": SITE["cameras"]}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["tz"] == "UTC" and body["capacity"] is None and body["max_stay_seconds"] is None
    assert (body["repeat_seconds"], body["absent_after_seconds"], body["max_edits"]) == (60, 86400, 1)
    assert body["since"] == body["created_at"] and body["active"] is True
    assert body["cameras"] == SITE["cameras"]
    # A new site's history is still to be derived by the engine.
    assert body["deriving"] is True
    read = visit_viewer.get(f"/api/sites/{body['id']}").json()
    assert read["name"] == "Depot A" and read["cameras"] == SITE["cameras"]
    assert [site["id"] for site in visit_viewer.get("/api/sites/").json()] == [body["id"]]


@pytest.mark.parametrize(
    "change, field, code",
    [
        pytest.param({"cameras": [{"camera": "gate-9", "role": "entry"}]}, "cameras", "unknown_camera", id="unknown"),
        pytest.param({"cameras": [{"camera": "gate-1", "role": "in"}]}, "cameras", "invalid_role", id="bad role"),
        pytest.param({"cameras": []}, "cameras", "required", id="no cameras"),
        pytest.param({"cameras": "gate-1"}, "cameras", "required", id="not a list"),
        pytest.param(
            {"cameras": [{"camera": "gate-1", "role": "entry"}, {"camera": "gate-1", "role": "exit"}]},
            "cameras",
            "duplicate_camera",
            id="twice",
        ),
        pytest.param({"repeat_seconds": -1}, "repeat_seconds", "min_value", id="negative repeat"),
        pytest.param({"absent_after_seconds": -5}, "absent_after_seconds", "min_value", id="negative absent"),
        pytest.param({"max_stay_seconds": -60}, "max_stay_seconds", "min_value", id="negative stay"),
        pytest.param({"capacity": -1}, "capacity", "min_value", id="negative capacity"),
        pytest.param({"max_edits": 3}, "max_edits", "max_value", id="edits"),
        pytest.param({"tz": "Mars/Olympus"}, "tz", "invalid_tz", id="tz"),
        pytest.param({"tz": "../../etc/passwd"}, "tz", "invalid_tz", id="tz path"),
        pytest.param({"since": "yesterday"}, "since", "invalid", id="since"),
        pytest.param({"name": ""}, "name", "blank", id="no name"),
    ],
)
def test_a_bad_site_is_a_400_naming_the_field_and_stores_nothing(site_manager, change, field, code):
    response = site_manager.post("/api/sites/", {**SITE, **change}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert (body["field"], body["error"]) == (field, code), body
    assert not Site.objects.exists()


def test_a_site_without_its_cameras_is_refused(site_manager):
    response = site_manager.post("/api/sites/", {"name": "Depot A"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "cameras"


def test_changing_roles_or_parameters_marks_the_history_to_derive_again_and_a_name_does_not(site_manager):
    site_id = site_manager.post("/api/sites/", SITE, format="json").json()["id"]
    Site.objects.filter(pk=site_id).update(derived_revision=1)  # as the engine leaves it
    renamed = site_manager.patch(f"/api/sites/{site_id}/", {"name": "Depot B", "capacity": 5}, format="json")
    assert renamed.status_code == 200 and renamed.json()["deriving"] is False
    roles = [{"camera": "gate-1", "role": "both"}, {"camera": "yard", "role": "exit"}]
    changed = site_manager.patch(f"/api/sites/{site_id}/", {"cameras": roles}, format="json")
    assert changed.json()["deriving"] is True and changed.json()["cameras"] == roles
    Site.objects.filter(pk=site_id).update(derived_revision=2)
    assert site_manager.patch(f"/api/sites/{site_id}/", {"repeat_seconds": 30}, format="json").json()["deriving"]


def test_a_failed_edit_leaves_the_site_as_it_was(site_manager):
    site_id = site_manager.post("/api/sites/", SITE, format="json").json()["id"]
    bad = {"cameras": [{"camera": "gate-1", "role": "entry"}, {"camera": "nope", "role": "exit"}], "capacity": 3}
    assert site_manager.patch(f"/api/sites/{site_id}/", bad, format="json").status_code == 400
    site = Site.objects.get(pk=site_id)
    assert site.capacity == 120 and site.revision == 1
    assert sorted(site.cameras.values_list("camera__name", "role")) == [("gate-1", "entry"), ("gate-2", "exit")]


def test_null_since_means_the_site_creation(site_manager):
    site_id = site_manager.post("/api/sites/", {**SITE, "since": "2026-01-01T00:00:00Z"}, format="json").json()["id"]
    assert site_manager.get(f"/api/sites/{site_id}/").json()["since"] == "2026-01-01T00:00:00.000000Z"
    body = site_manager.patch(f"/api/sites/{site_id}/", {"since": None}, format="json").json()
    assert body["since"] == body["created_at"]


def test_deleting_a_site_deletes_it(site_manager):
    site_id = site_manager.post("/api/sites/", SITE, format="json").json()["id"]
    assert site_manager.delete(f"/api/sites/{site_id}/").status_code == 204
    assert site_manager.get(f"/api/sites/{site_id}/").status_code == 404


def test_reading_needs_view_visit_and_changing_needs_manage_sites(credentials, site_manager, visit_viewer, settings):
    from conftest import api_client

    settings.PUBLIC_FEED = True  # never public, whatever the feed is
    site_id = site_manager.post("/api/sites/", SITE, format="json").json()["id"]
    assert api_client().get("/api/sites/").status_code == 401
    assert api_client(credentials.viewer).get("/api/sites/").status_code == 403
    assert api_client(credentials.device).get("/api/sites/").status_code in (401, 403)
    assert visit_viewer.get(f"/api/sites/{site_id}/").status_code == 200
    assert visit_viewer.patch(f"/api/sites/{site_id}/", {"capacity": 1}, format="json").status_code == 403
    assert visit_viewer.post("/api/sites/", {**SITE, "name": "B"}, format="json").status_code == 403
    assert visit_viewer.delete(f"/api/sites/{site_id}/").status_code == 403


def test_ingest_takes_a_direction_in_or_out_and_refuses_anything_else(device_client):
    stored = post_detection(device_client, plate="34ABC123", direction="in")
    assert stored["direction"] == "in" and Detection.objects.get(pk=stored["id"]).direction == "in"
    assert post_detection(device_client, id="trk-2")["direction"] is None
    response = device_client.post("/api/detect", {**_body(), "direction": "sideways"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "direction"


def _body():
    from conftest import detection_body

    return detection_body(id="trk-9", camera="gate-1")
