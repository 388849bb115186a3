"""A client that drops off the network catches up with exactly what it missed."""

import json

from conftest import on_every_server
from feed_client import assert_nothing_else_queued, connect, receive, receive_events

from detections.models import Event


def post(http, body) -> dict:
    response = http.post("/api/detect", json=body)
    assert response.status_code == 201, response.text
    return response.json()


@on_every_server
def test_a_client_that_resumes_receives_exactly_the_55_events_it_missed_in_order_then_live_ones(
    server, simulated_detection
):
    with server.device() as http, server.staff() as staff:
        with connect(server) as ws:
            post(http, simulated_detection())
            last_seen = receive(ws)["seq"]
        # Offline: 50 detections and 5 deletions happen.
        ids = [post(http, simulated_detection())["id"] for _ in range(50)]
        for detection_id in ids[:5]:
            assert staff.delete(f"/api/detections/{detection_id}/").status_code == 204

        with connect(server, after=last_seen) as ws:
            missed = receive_events(ws, 55)
            assert [m["seq"] for m in missed] == list(range(last_seen + 1, last_seen + 56))
            assert [m["id"] for m in missed[:50]] == ids
            assert [m["deleted_id"] for m in missed[50:]] == ids[:5]
            assert missed[-1]["count"] == 46
            assert all(m["image"] for m in missed[:50][5:])  # still stored: thumbnail inline
            live = post(http, simulated_detection())
            message = receive(ws)
            assert (message["seq"], message["id"]) == (last_seen + 56, live["id"])
            assert_nothing_else_queued(ws)


def test_a_resume_message_replays_like_the_query_parameter(server, simulated_detection):
    with server.device() as http:
        first = post(http, simulated_detection())
        second = post(http, simulated_detection())
        with connect(server) as ws:
            ws.send(json.dumps({"type": "resume", "after": 0}))
            assert [m["id"] for m in receive_events(ws, 2)] == [first["id"], second["id"]]
            assert_nothing_else_queued(ws)


def test_a_subscription_filters_replayed_and_live_events_alike(server, simulated_detection):
    with server.device() as http:
        gate = post(http, simulated_detection(camera="gate-1"))
        post(http, simulated_detection(camera="yard"))
        with connect(server) as ws:
            ws.send(json.dumps({"type": "subscribe", "cameras": ["gate-1"]}))
            assert receive(ws) == {
                "type": "subscribed",
                "cameras": ["gate-1"],
                "vehicle_types": None,
                "types": ["deletion", "detection_updated", "new_detection"],
            }
            ws.send(json.dumps({"type": "resume", "after": 0}))
            assert receive(ws)["id"] == gate["id"]
            post(http, simulated_detection(camera="yard"))
            live = post(http, simulated_detection(camera="gate-1"))
            message = receive(ws)
            assert (message["id"], message["seq"]) == (live["id"], 4)
            assert_nothing_else_queued(ws)


def test_a_client_asking_for_events_the_log_no_longer_holds_is_told_to_reload(server, simulated_detection):
    with server.device() as http:
        for _ in range(3):
            post(http, simulated_detection())
    Event.objects.filter(seq__lte=2).delete()  # as retention would
    with connect(server, after=0) as ws:
        assert receive(ws)["type"] == "reset"
        assert_nothing_else_queued(ws)
    with connect(server, after=1) as ws:  # seq 2 onwards is what it lacks, and 2 is gone
        assert receive(ws) == {
            "type": "reset",
            "seq": 3,
            "detail": "events after 1 are no longer available; reload, then follow from seq 3",
        }


def test_a_client_ahead_of_the_server_is_told_to_reload(server):
    with connect(server, after=99) as ws:
        message = receive(ws)
        assert (message["type"], message["seq"]) == ("reset", 0)


def test_bad_resume_messages_get_an_error_and_the_socket_stays_open(server):
    with connect(server) as ws:
        for bad in ({"type": "resume"}, {"type": "resume", "after": -1}, {"type": "resume", "after": "7"}):
            ws.send(json.dumps(bad))
            assert receive(ws)["code"] == "invalid_message"
        ws.send(json.dumps({"type": "subscribe", "vehicle_types": ["spaceship"]}))
        assert receive(ws)["code"] == "invalid_message"
        assert_nothing_else_queued(ws)
