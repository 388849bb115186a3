"""Journey events through real processes: the server, the journey engine and
the webhook worker. A journey reaches the sockets of users who may view
journeys (never another's), is replayed on resume, narrowed by `types`, and
is delivered as a signed webhook."""

import json

import pytest
from conftest import detection_body
from django.contrib.auth.models import Permission, User
from feed_client import assert_nothing_else_queued, connect, receive
from journey_helpers import EngineProcess, bridge, started
from rest_framework.authtoken.models import Token
from standardwebhooks import Webhook
from webhook_helpers import ReceiverProcess, WorkerProcess, make_endpoint

from detections.models import Camera, DeviceKey, Journey


@pytest.fixture
def analyst_token(transactional_db) -> str:
    user = User.objects.create_user("analyst")
    user.user_permissions.add(Permission.objects.get(codename="view_journey"))
    return Token.objects.create(user=user).key


@pytest.fixture
def bridge_route(server):
    route = bridge()
    key = DeviceKey.objects.get()
    key.cameras.add(*Camera.objects.filter(name__in=["bridge-s", "bridge-n"]))
    started()
    return route


@pytest.fixture
def engine(bridge_route):
    with EngineProcess() as process:
        yield process


def post_trip(http, plate="34ABC123", seconds=60):
    """A start read at 08:00 and an end read `seconds` later (2400 m: 144 km/h for 60 s)."""
    ids = []
    for n, (camera, time) in enumerate(
        [("bridge-s", "2026-11-24T08:00:00Z"), ("bridge-n", f"2026-11-24T08:{seconds // 60:02}:{seconds % 60:02}Z")]
    ):
        response = http.post(
            "/api/detect", json=detection_body(id=f"{plate}-{n}", camera=camera, time=time, plate=plate)
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def next_of_type(ws, kind: str) -> dict:
    while (message := receive(ws, timeout=20))["type"] != kind:
        pass
    return message


def test_a_journey_reaches_a_socket_that_may_view_journeys_and_never_one_that_may_not(server, engine, analyst_token):
    with server.device() as http, connect(server, token=analyst_token) as ws, connect(server) as plain:
        start, end = post_trip(http)
        completed = next_of_type(ws, "journey")
        speeding = receive(ws, timeout=20)
        assert (completed["event"], speeding["event"]) == ("completed", "speeding")
        assert speeding["seq"] == completed["seq"] + 1
        journey = completed["journey"]
        assert (journey["from_detection"], journey["to_detection"]) == (start, end)
        assert journey["seconds"] == 60 and journey["speed_kmh"] == pytest.approx(144)
        assert journey["id"] == Journey.objects.get().pk
        assert completed["route"] == "Bridge northbound" and completed["camera"] == "bridge-n"
        assert_nothing_else_queued(ws)
        assert [receive(plain)["type"] for _ in range(2)] == ["new_detection", "new_detection"]
        assert_nothing_else_queued(plain)  # the journey's seqs are skipped, not sent


def test_journey_events_are_replayed_on_resume_and_narrowed_by_types(server, engine, analyst_token):
    with server.device() as http, connect(server, token=analyst_token) as ws:
        post_trip(http)
        completed = next_of_type(ws, "journey")
        receive(ws)  # speeding
    with connect(server, token=analyst_token, after=completed["seq"] - 1) as ws:
        assert [receive(ws)["event"] for _ in range(2)] == ["completed", "speeding"]
    with connect(server, token=analyst_token) as ws:
        ws.send(json.dumps({"type": "subscribe", "types": ["journey"]}))
        assert receive(ws)["types"] == ["journey"]
        ws.send(json.dumps({"type": "resume", "after": 0}))
        assert [receive(ws)["type"] for _ in range(2)] == ["journey", "journey"]
        assert_nothing_else_queued(ws)


def test_journey_events_are_delivered_as_signed_webhooks(server, bridge_route, tmp_path):
    with ReceiverProcess(tmp_path) as receiver:
        _, secret = make_endpoint(receiver.url, events=["journey.completed", "journey.speeding"])
        with EngineProcess(), WorkerProcess():
            with server.device() as http:
                start, end = post_trip(http)
            requests = receiver.wait_for_requests(2)
    bodies = []
    for request in requests:
        Webhook(secret).verify(request["body"], request["headers"])
        bodies.append(json.loads(request["body"]))
    assert sorted(body["type"] for body in bodies) == ["journey.completed", "journey.speeding"]
    data = bodies[0]["data"]
    assert (data["journey"]["from_detection"], data["journey"]["to_detection"]) == (start, end)
    assert "type" not in data and "seq" not in data
