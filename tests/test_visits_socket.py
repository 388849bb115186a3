"""Visit, site and correction events on real sockets: the production server
and `manage.py follow_visits` in processes of their own, on real MariaDB and
Redis. Visit and site events reach users who may view visits and no one else;
`subscribe`'s `types` narrows them; `resume` replays them from the log."""

import json

import pytest
from conftest import detection_body
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from feed_client import assert_nothing_else_queued, connect, receive, receive_events
from rest_framework.authtoken.models import Token
from test_visits_live import EngineProcess, depot
from webhook_helpers import eventually

from detections.models import Visit, feed_head

pytestmark = pytest.mark.django_db(transaction=True)


def token_with(username: str, *codenames: str) -> str:
    user = User.objects.create_user(username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="detections", codename__in=codenames))
    return Token.objects.create(user=user).key


def post(device, plate: str, camera: str) -> int:
    body = detection_body(id=f"sock-{plate}-{camera}", camera=camera, time=timezone.now().isoformat(), plate=plate)
    response = device.post("/api/detections/", json={**body, "vehicle_img": None})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def subscribed(ws, types: list[str]) -> list[str]:
    ws.send(json.dumps({"type": "subscribe", "types": types}))
    answer = receive(ws)
    assert answer["type"] == "subscribed", answer
    return answer["types"]


def kinds(messages) -> list[tuple]:
    return [(m["type"], m.get("event")) for m in messages]


@pytest.fixture
def room_for_one(server):
    """A site with room for one vehicle, its history derived, and its engine running."""
    site = depot(since=timezone.now(), capacity=1)
    with EngineProcess():
        eventually(lambda: _derived(site), what="the site derived")
        yield site


def _derived(site) -> bool:
    site.refresh_from_db()
    return site.derived_revision == site.revision


def test_visit_and_site_events_reach_a_user_who_may_view_visits_and_not_a_viewer(server, room_for_one):
    visitor = token_with("visitor", "view_visit")
    with connect(server, token=visitor) as watching, connect(server) as viewing, server.device() as device:
        entry = post(device, "34ABC123", "gate-1")
        created, opened, full = receive_events(watching, 3)
        assert (created["type"], created["id"]) == ("new_detection", entry)
        assert kinds([opened, full]) == [("visit", "opened"), ("site", "full")]
        assert opened["seq"] == created["seq"] + 1 and full["seq"] == opened["seq"] + 1
        visit = Visit.objects.get(entry_detection_id=entry)
        assert opened["visit"]["id"] == visit.pk and opened["visit"]["state"] == "open"
        assert opened["visit"]["entry_camera"] == "gate-1" and opened["occupancy"] == 1
        assert (full["site"], full["occupancy"], full["capacity"]) == (room_for_one.pk, 1, 1)

        # The viewer gets the read, then the next read: nothing of the visit in between.
        marker = post(device, "06XYZ77", "yard")
        assert [(m["type"], m["id"]) for m in receive_events(viewing, 2)] == [
            ("new_detection", entry),
            ("new_detection", marker),
        ]
        assert_nothing_else_queued(viewing)


def test_types_narrow_the_feed_to_visits_sites_or_corrections_and_resume_replays_them(server, room_for_one):
    visitor = token_with("visitor", "view_visit")
    corrector = token_with("corrector", "change_detection")
    start = feed_head()
    with (
        connect(server, token=visitor) as visits_only,
        connect(server, token=visitor) as sites_only,
        connect(server, token=visitor) as corrections_only,
        server.device() as device,
        server.http(corrector) as staff,
    ):
        assert subscribed(visits_only, ["visit"]) == ["visit"]
        assert subscribed(sites_only, ["site"]) == ["site"]
        assert subscribed(corrections_only, ["detection_updated"]) == ["detection_updated"]

        entry = post(device, "34ABC128", "gate-1")  # misread
        opened = receive(visits_only)
        assert kinds([opened]) == [("visit", "opened")] and opened["visit"]["plate"] == "34ABC128"
        response = staff.patch(f"/api/detections/{entry}/", json={"plate": "34ABC123"})
        assert response.status_code == 200, response.text

        changed = receive(visits_only)
        assert kinds([changed]) == [("visit", "changed")]
        assert changed["visit"]["id"] == opened["visit"]["id"] and changed["visit"]["plate"] == "34ABC123"
        # The correction's visit event is the last thing the engine logs: every socket had the rest before it.
        assert kinds([receive(sites_only)]) == [("site", "full")]
        update = receive(corrections_only)
        assert update == {
            "type": "detection_updated",
            "seq": update["seq"],
            "id": entry,
            "camera": "gate-1",
            "plate": "34ABC123",
            "previous_plate": "34ABC128",
        }
        assert opened["seq"] < update["seq"] < changed["seq"]
        for ws in (visits_only, sites_only, corrections_only):
            assert_nothing_else_queued(ws)

    # From the log: resume replays every one of them, in seq order, to whoever may see it.
    replayable = ["visit", "site", "detection_updated"]
    with connect(server, token=visitor) as resumed, connect(server) as viewer:
        assert subscribed(resumed, replayable) == sorted(replayable)
        resumed.send(json.dumps({"type": "resume", "after": start}))
        replayed = receive_events(resumed, 4)
        assert kinds(replayed) == [
            ("visit", "opened"),
            ("site", "full"),
            ("detection_updated", None),
            ("visit", "changed"),
        ]
        assert [m["seq"] for m in replayed] == sorted(m["seq"] for m in replayed)
        assert replayed[2] == update and replayed[3] == changed
        assert_nothing_else_queued(resumed)

        # A viewer without 'view visit' may ask for them; it is given the correction only.
        assert subscribed(viewer, replayable) == ["detection_updated"]
        viewer.send(json.dumps({"type": "resume", "after": start}))
        assert receive(viewer) == update
        assert_nothing_else_queued(viewer)
