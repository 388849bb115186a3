"""The whole path through real processes: HTTP POST to a daphne process,
stored in the database, published on the channel layer, received by real
WebSocket clients."""

import base64
import json

from feed_client import connect, receive

from detections.models import Detection, Event


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
