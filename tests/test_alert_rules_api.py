"""/api/alert-rules/: what raises an alert, and what a rule's conditions may be
(protocol.md, "Watch-lists and alerts")."""

import pytest
from alert_helpers import client_with, store_alert
from conftest import api_client

from detections.alerts import config
from detections.models import AlertRule

pytestmark = pytest.mark.django_db


def protocol_example(watchlist) -> dict:
    return {
        "name": "stolen at the gates",
        "watchlist": watchlist.pk,
        "cameras": ["gate-1"],
        "vehicle_types": ["car", "van"],
        "min_confidence": 0.5,
        "schedule": {"days": [0, 1, 2, 3, 4], "from": "22:00", "to": "06:00", "tz": "Europe/Istanbul"},
        "cooldown_seconds": 300,
        "active": True,
    }


@pytest.mark.parametrize("method, path", [("get", "/api/alert-rules/"), ("post", "/api/alert-rules/")])
def test_rules_need_the_manage_watchlists_permission(settings, viewer_client, device_client, method, path):
    settings.PUBLIC_FEED = True
    alert_viewer = client_with("alert-viewer", "view_alert")

    assert getattr(api_client(), method)(path, {}, format="json").status_code == 401
    for client in (viewer_client, device_client, alert_viewer):
        assert getattr(client, method)(path, {"name": "r"}, format="json").status_code == 403
    assert not AlertRule.objects.exists()


def test_the_protocol_example_is_stored_as_sent(manager, stolen):
    before = config.revision()

    response = manager.post("/api/alert-rules/", protocol_example(stolen), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in protocol_example(stolen)} == protocol_example(stolen)
    rule = AlertRule.objects.get(pk=body["id"])
    assert (rule.watchlist, rule.cameras, rule.schedule["tz"]) == (stolen, ["gate-1"], "Europe/Istanbul")
    assert config.revision() > before


def test_every_field_but_the_name_is_optional(manager):
    response = manager.post("/api/alert-rules", {"name": "every truck"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["watchlist"], body["cameras"], body["vehicle_types"]) == (None, [], [])
    assert (body["min_confidence"], body["schedule"], body["cooldown_seconds"], body["active"]) == (None, None, 0, True)


def test_vehicle_types_take_any_letter_case_and_a_schedule_without_tz_is_utc(manager):
    body = {
        "name": "r",
        "vehicle_types": ["Car", "VAN", "car"],
        "schedule": {"days": [6, 5], "from": "08:00", "to": "18:00"},
    }

    response = manager.post("/api/alert-rules/", body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["vehicle_types"] == ["car", "van"]
    assert response.json()["schedule"] == {"days": [5, 6], "from": "08:00", "to": "18:00", "tz": "UTC"}


@pytest.mark.parametrize(
    "change, field",
    [
        pytest.param({"name": ""}, "name", id="no name"),
        pytest.param({"watchlist": 999}, "watchlist", id="an unknown watch-list"),
        pytest.param({"watchlist": "stolen"}, "watchlist", id="a watch-list by name"),
        pytest.param({"cameras": "gate-1"}, "cameras", id="cameras not a list"),
        pytest.param({"cameras": [1]}, "cameras", id="a camera not a string"),
        pytest.param({"cameras": [""]}, "cameras", id="an empty camera name"),
        pytest.param({"vehicle_types": ["spaceship"]}, "vehicle_types", id="an unknown vehicle type"),
        pytest.param({"vehicle_types": "car"}, "vehicle_types", id="vehicle_types not a list"),
        pytest.param({"min_confidence": 1.5}, "min_confidence", id="min_confidence above 1"),
        pytest.param({"min_confidence": -0.1}, "min_confidence", id="min_confidence below 0"),
        pytest.param({"cooldown_seconds": -1}, "cooldown_seconds", id="a negative cooldown"),
        pytest.param({"schedule": "nights"}, "schedule", id="a schedule not an object"),
        pytest.param({"schedule": {"days": [7], "from": "22:00", "to": "06:00"}}, "schedule", id="day 7"),
        pytest.param({"schedule": {"days": [], "from": "22:00", "to": "06:00"}}, "schedule", id="no days"),
        pytest.param({"schedule": {"days": ["mon"], "from": "22:00", "to": "06:00"}}, "schedule", id="a day by name"),
        pytest.param({"schedule": {"days": [True], "from": "22:00", "to": "06:00"}}, "schedule", id="a day true"),
        pytest.param({"schedule": {"days": [0], "from": "25:00", "to": "06:00"}}, "schedule", id="hour 25"),
        pytest.param({"schedule": {"days": [0], "from": "22:00", "to": "6:00"}}, "schedule", id="not HH:MM"),
        pytest.param({"schedule": {"days": [0], "from": "22:00", "to": "22:00"}}, "schedule", id="from equals to"),
        pytest.param({"schedule": {"days": [0], "from": "22:00"}}, "schedule", id="no to"),
        pytest.param(
            {"schedule": {"days": [0], "from": "22:00", "to": "06:00", "tz": "Mars/Olympus"}}, "schedule", id="bad tz"
        ),
        pytest.param(
            {"schedule": {"days": [0], "from": "22:00", "to": "06:00", "tz": "Europe"}}, "schedule", id="tz a folder"
        ),
        pytest.param(
            {"schedule": {"days": [0], "from": "22:00", "to": "06:00", "zone": "UTC"}}, "schedule", id="unknown key"
        ),
    ],
)
def test_a_bad_condition_is_a_400_naming_the_field(manager, stolen, change, field):
    response = manager.post("/api/alert-rules/", {**protocol_example(stolen), **change}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["field"].split(".")[0] == field  # "cameras.0": the first camera
    assert response.json()["detail"]
    assert not AlertRule.objects.exists()


def test_a_rule_is_changed_field_by_field_and_deleted(manager, stolen):
    rule = manager.post("/api/alert-rules/", protocol_example(stolen), format="json").json()

    changed = manager.patch(f"/api/alert-rules/{rule['id']}/", {"cameras": [], "active": False}, format="json")
    refused = manager.patch(f"/api/alert-rules/{rule['id']}/", {"min_confidence": 2}, format="json")
    deleted = manager.delete(f"/api/alert-rules/{rule['id']}")

    assert changed.status_code == 200, changed.content
    assert (changed.json()["cameras"], changed.json()["active"], changed.json()["schedule"]["from"]) == (
        [],
        False,
        "22:00",
    )
    assert refused.status_code == 400
    assert deleted.status_code == 204
    assert not AlertRule.objects.exists()


def test_rules_are_listed_by_name_in_numbered_pages(manager):
    for name in ("b", "c", "a"):
        AlertRule.objects.create(name=name)

    response = manager.get("/api/alert-rules/", {"page_size": 2})

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert [rule["name"] for rule in response.json()["results"]] == ["a", "b"]


def test_deleting_a_rule_keeps_its_alerts(manager):
    rule = AlertRule.objects.create(name="every truck")
    alert = store_alert(rule=rule)

    assert manager.delete(f"/api/alert-rules/{rule.pk}/").status_code == 204

    alert.refresh_from_db()
    assert (alert.rule, alert.rule_name) == (None, "every truck")
