"""The whole path through real processes: HTTP POST to a daphne process,
stored in the database, published on the channel layer, received by real
WebSocket clients."""

import base64
import contextlib
import json

import pytest
import redis
from conftest import on_every_server
from django.conf import settings
from feed_client import assert_nothing_else_queued, connect, receive, receive_events

from detections.models import Detection, Event


@on_every_server
def test_every_client_receives_a_new_detection_with_its_fields_count_and_seq(server, simulated_detection):
    body = simulated_detection(camera="gate-1")
    with connect(server) as first, connect(server, "/ws/detections/") as second:
        with server.device() as http:
            response = http.post("/api/detect", json=body)
        assert response.status_code == 201, response.text
        stored = response.json()
        for ws in (first, second):
            message = receive(ws)
            assert message["type"] == "new_detection"
            assert message["id"] == stored["id"]
            assert message["tracking_id"] == body["id"]
            assert message["vehicle_type"] == body["vehicle_type"]
            assert message["camera"] == "gate-1"
            assert message["count"] == 1
            assert message["seq"] == 1
            assert message["plate"] == body["plate"]
            assert message["confidence"] == body["confidence"]
            assert message["image_url"] == stored["image_url"]
            assert message["thumbnail_url"] == stored["thumbnail_url"]
            thumbnail = base64.b64decode(message["image"], validate=True)
            assert thumbnail.startswith(b"\xff\xd8")  # a JPEG, inline


@on_every_server
def test_a_deletion_reaches_clients_with_the_new_count(server, simulated_detection):
    with server.device() as http, server.staff() as staff:
        ids = [http.post("/api/detect", json=simulated_detection()).json()["id"] for _ in range(2)]
        with connect(server) as ws:
            response = staff.delete(f"/api/delete/{ids[0]}")
            assert response.status_code == 200
            assert response.json()["new_count"] == 1
            message = receive(ws)
            assert message == {
                "type": "deletion",
                "seq": 3,
                "deleted_id": ids[0],
                "count": 1,
                "camera": "gate-1",
                "vehicle_type": message["vehicle_type"],
            }
            assert staff.delete(f"/api/detections/{ids[1]}/").status_code == 204
            assert receive(ws)["count"] == 0
    assert Detection.objects.count() == 0
    assert list(Event.objects.values_list("seq", "kind")) == [
        (1, "new_detection"),
        (2, "new_detection"),
        (3, "deletion"),
        (4, "deletion"),
    ]


def test_a_client_answers_ping_and_reports_unknown_messages(server):
    with connect(server) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
        ws.send("not json")
        assert receive(ws)["code"] == "invalid_message"
        ws.send(json.dumps({"type": "dance"}))
        assert receive(ws)["code"] == "unknown_type"


def test_every_client_receives_every_event_of_a_batch_in_seq_order_with_its_thumbnail(server, simulated_detection):
    bodies = [simulated_detection(camera=("gate-1", "gate-2")[n % 2]) for n in range(20)]
    with connect(server) as ws:
        with server.device() as http:
            response = http.post("/api/detections/batch/", json={"detections": bodies})
        assert response.status_code == 200, response.text
        assert response.json()["created"] == 20
        messages = receive_events(ws, 20)
        assert_nothing_else_queued(ws)
    assert [m["seq"] for m in messages] == list(range(1, 21))
    assert [m["count"] for m in messages] == list(range(1, 21))
    assert [m["id"] for m in messages] == [r["id"] for r in response.json()["results"]]
    assert [m["tracking_id"] for m in messages] == [body["id"] for body in bodies]
    for message in messages:
        assert base64.b64decode(message["image"], validate=True).startswith(b"\xff\xd8")
    assert Event.objects.count() == Detection.objects.count() == 20


def test_a_server_process_subscribes_to_the_feed_once_however_many_sockets_it_serves(server, simulated_detection):
    if "channels_redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.fail("this test counts group members in Redis: set REDIS_URL")
    group = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:group:detections"
    members = redis.Redis.from_url(settings.REDIS_URL)
    before = members.zcard(group)  # other listeners (this test process's fixtures) may be in it
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(server)) for _ in range(5)]
        with server.device() as http:
            stored = http.post("/api/detect", json=simulated_detection()).json()
        for ws in sockets:
            assert receive(ws)["id"] == stored["id"]
        assert members.zcard(group) == before + 1  # one member for the process, not one per socket


def test_the_production_server_uvicorn_stores_delivers_and_declines_compression(server, simulated_detection):
    """docker-compose.yml's command: the whole path, and permessage-deflate,
    which every browser offers, declined (each event is sent to every socket;
    compressing it for each costs more than it saves on JPEG snapshots)."""
    with connect(server) as ws:  # the websockets client offers permessage-deflate
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        with server.device() as http:
            response = http.post("/api/detect", json=simulated_detection())
        assert response.status_code == 201, response.text
        message = receive(ws)
        assert message["type"] == "new_detection" and message["id"] == response.json()["id"]
    with connect(server, after=0) as ws:  # and replays from the log
        assert receive(ws)["id"] == response.json()["id"]
