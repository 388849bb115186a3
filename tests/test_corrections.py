"""Correcting a read's plate (`writes.detection_correct`), through the API's
PATCH and the admin's change form: the plate and its normal form change, a
`detection_updated` event is logged in the same transaction (the feed and
webhooks carry it), the alert rules run for the new plate only, and the visit
engine derives both vehicles' timelines again; on real MariaDB and Redis."""

import json

import pytest
from alert_helpers import client_with
from conftest import api_client, store_detection
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from test_alerts_raised import watch
from test_visit_engine import make_site, read, run_engine, visits

from detections.alerts import config
from detections.core import writes
from detections.models import Alert, AlertRule, Detection, Event, EventKind, Visit, WebhookEndpoint, WebhookMessage
from detections.webhooks import outbox

pytestmark = pytest.mark.django_db(transaction=True)

CONTRACT_FIELDS = {"type", "seq", "id", "camera", "plate", "previous_plate"}


@pytest.fixture(autouse=True)
def _config_read_at_every_write(settings):
    settings.ALERT_CONFIG_CHECK_SECONDS = 0
    config.forget()


@pytest.fixture
def corrector(cameras):
    return client_with("corrector", "change_detection")


def updated_events() -> list[dict]:
    return [e.payload for e in Event.objects.filter(kind=EventKind.DETECTION_UPDATED).order_by("seq")]


def patch(client, detection_id, body):
    return client.patch(f"/api/detections/{detection_id}/", body, format="json")


# --- The API --------------------------------------------------------------------------------


def test_a_correction_changes_the_plate_and_logs_the_contracts_event(corrector, feed_listener):
    detection = store_detection(plate="34A8C128")
    response = patch(corrector, detection.pk, {"plate": " 34ABC123 "})
    assert response.status_code == 200, response.content
    assert response.json()["plate"] == "34ABC123" and response.json()["id"] == detection.pk
    stored = Detection.objects.get(pk=detection.pk)
    assert (stored.plate, stored.plate_normalized) == ("34ABC123", "34A8C123")
    (event,) = Event.objects.filter(kind=EventKind.DETECTION_UPDATED)
    assert set(event.payload) == CONTRACT_FIELDS
    assert event.payload == {
        "type": "detection_updated",
        "seq": event.seq,
        "id": detection.pk,
        "camera": "gate-1",
        "plate": "34ABC123",
        "previous_plate": "34A8C128",
    }
    assert (event.detection_id, event.camera, event.vehicle_type) == (detection.pk, "gate-1", "car")
    # Published after commit, as the socket carries it.
    assert feed_listener.receive()["type"] == "new_detection"
    assert feed_listener.receive() == event.payload
    feed_listener.assert_nothing_else()


def test_the_same_plate_again_changes_nothing_and_logs_nothing(corrector):
    detection = store_detection(plate="34ABC123")
    response = patch(corrector, detection.pk, {"plate": "34ABC123"})
    assert response.status_code == 200 and response.json()["plate"] == "34ABC123"
    assert updated_events() == []


def test_a_plate_may_be_corrected_to_none_read(corrector):
    detection = store_detection(plate="34ABC123")
    assert patch(corrector, detection.pk, {"plate": ""}).status_code == 200
    assert Detection.objects.get(pk=detection.pk).plate_normalized == ""
    assert [(e["plate"], e["previous_plate"]) for e in updated_events()] == [("", "34ABC123")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plate": "X" * 33}, "plate"),
        ({"plate": "34ABC\n123"}, "plate"),
        ({"plate": None}, "plate"),
        ({"plate": ["34ABC123"]}, "plate"),
        ({}, "plate"),
        ({"plate": "34ABC123", "vehicle_type": "bus"}, "vehicle_type"),
        ({"time": "2026-11-24T08:00:00Z"}, "time"),
    ],
)
def test_a_bad_correction_is_a_400_naming_the_field_and_changes_nothing(corrector, body, field):
    detection = store_detection(plate="34A8C128")
    response = patch(corrector, detection.pk, body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field and response.json()["detail"]
    assert Detection.objects.get(pk=detection.pk).plate == "34A8C128"
    assert updated_events() == []


def test_a_body_that_is_no_object_is_a_400(corrector):
    detection = store_detection(plate="34A8C128")
    response = patch(corrector, detection.pk, ["34ABC123"])
    assert response.status_code == 400 and response.json()["error"]


def test_only_staff_with_change_detection_may_correct(credentials, corrector):
    detection = store_detection(plate="34A8C128")
    others = {
        "anonymous": (api_client(), 401),
        "a viewer": (api_client(credentials.viewer), 403),
        "staff who may delete": (api_client(credentials.staff), 403),
        "a device": (api_client(credentials.device), 403),
    }
    for who, (client, status) in others.items():
        response = patch(client, detection.pk, {"plate": "34ABC123"})
        assert response.status_code == status, who
        assert response.json()["error"], who
    assert Detection.objects.get(pk=detection.pk).plate == "34A8C128" and updated_events() == []
    assert patch(corrector, detection.pk, {"plate": "34ABC123"}).status_code == 200


def test_an_unknown_detection_is_a_json_404_and_put_is_not_allowed(corrector):
    response = patch(corrector, 987654, {"plate": "34ABC123"})
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    detection = store_detection(plate="34A8C128")
    response = corrector.put(f"/api/detections/{detection.pk}/", {"plate": "34ABC123"}, format="json")
    assert response.status_code == 405 and response.json()["error"]


# --- Alerts ---------------------------------------------------------------------------------


def alerts_of(detection) -> list[tuple[str, str]]:
    return sorted(Alert.objects.filter(detection_id=detection.pk).values_list("rule_name", "matched_plate"))


def test_the_rules_run_for_the_new_plate_and_never_again_for_the_old(corrector):
    watch("34 ABC 123", name="stolen")
    watch("06 XYZ 77", name="wanted")
    AlertRule.objects.create(name="every car at gate-1", cameras=["gate-1"])
    detection = store_detection(plate="06XYZ77")
    assert alerts_of(detection) == [("every car at gate-1", ""), ("wanted rule", "06 XYZ 77")]

    assert patch(corrector, detection.pk, {"plate": "34ABC123"}).status_code == 200
    # The new plate's list raises; the old plate's and the rule without a list do not raise again.
    assert alerts_of(detection) == [
        ("every car at gate-1", ""),
        ("stolen rule", "34 ABC 123"),
        ("wanted rule", "06 XYZ 77"),
    ]
    (update,) = updated_events()
    alert = Alert.objects.get(detection_id=detection.pk, rule_name="stolen rule")
    # Its event follows the correction's, and it carries the read as corrected.
    assert alert.seq == update["seq"] + 1
    assert alert.detection["plate"] == "34ABC123" and alert.detection["id"] == detection.pk
    logged = Event.objects.get(seq=alert.seq)
    assert logged.kind == EventKind.ALERT and logged.payload["alert_id"] == alert.pk

    # Back to the old plate: its list raised for this read already, so nothing new.
    assert patch(corrector, detection.pk, {"plate": "06XYZ77"}).status_code == 200
    assert len(alerts_of(detection)) == 3


def test_a_correction_to_a_plate_the_same_entry_matched_raises_nothing_new(corrector):
    watch("34 ABC 123", name="stolen")  # fuzzy, one edit
    detection = store_detection(plate="34ABC128")
    assert alerts_of(detection) == [("stolen rule", "34 ABC 123")]
    assert patch(corrector, detection.pk, {"plate": "34ABC123"}).status_code == 200
    assert alerts_of(detection) == [("stolen rule", "34 ABC 123")]


def test_a_failed_correction_leaves_plate_alerts_and_log_as_they_were(corrector, monkeypatch):
    watch("34 ABC 123", name="stolen")
    detection = store_detection(plate="06XYZ77")
    logged = Event.objects.count()

    def fail(*args, **kwargs):
        raise RuntimeError("the database went away after the alerts")

    monkeypatch.setattr(writes.events.events_logged, "send", fail)
    with pytest.raises(RuntimeError):
        writes.detection_correct(detection_id=detection.pk, plate="34ABC123")
    assert Detection.objects.get(pk=detection.pk).plate == "06XYZ77"
    assert alerts_of(detection) == [] and Event.objects.count() == logged


# --- Webhooks -------------------------------------------------------------------------------


def test_webhooks_hear_of_a_correction_as_detection_updated(corrector):
    WebhookEndpoint.objects.create(url="https://gate.example/hook", events=["detection.updated"])
    detection = store_detection(plate="34A8C128")
    patch(corrector, detection.pk, {"plate": "34ABC123"})
    while outbox.fan_out():
        pass
    (message,) = WebhookMessage.objects.all()
    assert message.event_type == "detection.updated"
    body = json.loads(message.body)
    assert body["type"] == "detection.updated"
    assert body["data"] == {"id": detection.pk, "camera": "gate-1", "plate": "34ABC123", "previous_plate": "34A8C128"}


# --- Visits ---------------------------------------------------------------------------------


def test_correcting_a_misread_entry_derives_both_vehicles_again_and_the_visit_keeps_its_id():
    site = make_site(max_edits=0)  # no pairing by look-alikes: only the correction can mend it
    entry = read("34ABC129", "in-1", 0)  # misread
    read("06XYZ77", "in-1", 5)
    read("34ABC123", "out-1", 60)
    run_engine()
    assert visits(site) == [
        ("34ABC129", "open", 0, None),
        ("06XYZ77", "open", 5, None),
        ("34ABC123", "entry_missed", None, 60),
    ]
    misread_visit = Visit.objects.get(site=site, anchor_detection_id=entry.pk).pk

    writes.detection_correct(detection_id=entry.pk, plate="34ABC123")
    run_engine()
    # The new plate's timeline now pairs the entry with its exit; the old plate's has no visit left.
    assert visits(site) == [("34ABC123", "closed", 0, 60), ("06XYZ77", "open", 5, None)]
    assert Visit.objects.get(site=site, anchor_detection_id=entry.pk).pk == misread_visit
    changes = [
        (e.payload["event"], e.payload["visit"]["plate"], e.payload["visit"]["state"])
        for e in Event.objects.filter(kind=EventKind.VISIT).order_by("seq")
    ][-2:]
    assert sorted(changes) == [("closed", "34ABC123", "closed"), ("removed", "34ABC123", "entry_missed")]


def test_a_corrected_visit_keeps_its_id_when_the_old_plates_timeline_is_derived_first():
    site = make_site(max_edits=0)
    entry = read("34ABC129", "in-1", 0)
    run_engine()
    misread_visit = Visit.objects.get(site=site).pk
    # In the same step: a late read of the old plate, earlier, derives its timeline before the new one's.
    read("34ABC129", "out-1", -30)
    writes.detection_correct(detection_id=entry.pk, plate="34ABC123")
    run_engine()
    assert visits(site) == [("34ABC129", "entry_missed", None, -30), ("34ABC123", "open", 0, None)]
    assert Visit.objects.get(site=site, anchor_detection_id=entry.pk).pk == misread_visit
    assert not Event.objects.filter(kind=EventKind.VISIT, payload__event="removed").exists()


def test_correcting_a_read_that_closed_a_visit_opens_it_again():
    site = make_site(max_edits=0)
    read("34ABC123", "in-1", 0)
    leave = read("34ABC123", "out-1", 60)
    run_engine()
    assert visits(site) == [("34ABC123", "closed", 0, 60)]
    writes.detection_correct(detection_id=leave.pk, plate="06XYZ77")
    run_engine()
    assert visits(site) == [("34ABC123", "open", 0, None), ("06XYZ77", "entry_missed", None, 60)]


def test_a_correction_of_a_read_deleted_before_the_engine_saw_it_derives_its_visit_away():
    site = make_site(max_edits=0)
    entry = read("34ABC129", "in-1", 0)
    run_engine()
    writes.detection_correct(detection_id=entry.pk, plate="34ABC123")
    writes.detection_delete(detection=Detection.objects.get(pk=entry.pk))
    run_engine()
    assert visits(site) == []


# --- The admin ------------------------------------------------------------------------------


def staff_user(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="detections", codename__in=codenames))
    return user


def change_url(detection) -> str:
    return reverse("admin:detections_detection_change", args=[detection.pk])


def test_the_admins_change_form_corrects_the_plate_through_the_same_function(client):
    watch("34 ABC 123", name="stolen")
    detection = store_detection(plate="34A8C128", tracking_id="trk-admin")
    client.force_login(staff_user("editor", "view_detection", "change_detection"))
    page = client.get(change_url(detection)).content.decode()
    assert 'name="plate"' in page and 'name="tracking_id"' not in page
    response = client.post(change_url(detection), {"plate": "34ABC123", "tracking_id": "forged"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    stored = Detection.objects.get(pk=detection.pk)
    assert (stored.plate, stored.plate_normalized, stored.tracking_id) == ("34ABC123", "34A8C123", "trk-admin")
    assert [(e["plate"], e["previous_plate"]) for e in updated_events()] == [("34ABC123", "34A8C128")]
    # Matched already when the read was stored (one edit away): not raised again.
    assert alerts_of(detection) == [("stolen rule", "34 ABC 123")]


def test_the_admin_refuses_a_bad_plate_on_the_form(client):
    detection = store_detection(plate="34A8C128")
    client.force_login(staff_user("editor", "view_detection", "change_detection"))
    response = client.post(change_url(detection), {"plate": "X" * 40})
    assert response.status_code == 200  # the form again, with its error
    assert response.context["adminform"].form.errors["plate"]
    assert Detection.objects.get(pk=detection.pk).plate == "34A8C128" and updated_events() == []


def test_staff_without_change_detection_see_the_read_only_and_cannot_post(client):
    detection = store_detection(plate="34A8C128")
    client.force_login(staff_user("reader", "view_detection"))
    page = client.get(change_url(detection)).content.decode()
    assert 'name="plate"' not in page
    assert client.post(change_url(detection), {"plate": "34ABC123"}).status_code == 403
    assert Detection.objects.get(pk=detection.pk).plate == "34A8C128" and updated_events() == []
