"""A client that drops off the network catches up with exactly what it missed."""

import contextlib
import json
import socket
from urllib.parse import urlencode, urlsplit

from conftest import detection_body, on_every_server
from feed_client import assert_nothing_else_queued, connect, receive, receive_events
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

from detections.feed.consumers import INBOX_LIMIT
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


def test_a_client_that_stops_reading_gets_every_event_up_to_the_last_once_it_reads_again(server):
    """Past the socket's inbox the server stops queueing live events for a client
    that does not read; once it reads again it must get the rest from the log,
    the last events included, although no later event comes to reveal the gap."""
    first = head(server) + 1
    with stalled_socket(server) as ws:
        posted = 0
        with server.device() as http:
            # Well past what the kernel's buffers and the inbox hold between them.
            while posted < 3 * INBOX_LIMIT:
                bodies = [detection_body(id=f"stall-{posted + n}") for n in range(BATCH)]
                response = http.post("/api/detections/batch/", json={"detections": bodies}, timeout=120)
                assert response.status_code == 200 and response.json()["created"] == BATCH, response.text
                posted += BATCH
        last = head(server)
        assert last == first + posted - 1
        seqs = []
        while not seqs or seqs[-1] < last:
            message = receive(ws, timeout=30)
            if "seq" in message:
                seqs.append(message["seq"])
        assert seqs == list(range(first, last + 1))
        assert_nothing_else_queued(ws)
    assert inbox_overflows(server) >= 1, "the client kept up: the test never filled the socket's inbox"


BATCH = 500


def inbox_overflows(server) -> float:
    text = server.metrics().text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    return sum(s.value for s in samples if s.name == "vehicle_monitor_feed_inbox_overflows_total")


def head(server) -> int:
    with server.http(server.credentials.viewer) as viewer:
        return viewer.get("/api/stats").json()["seq"]


@contextlib.contextmanager
def stalled_socket(server):
    """A viewer's socket that reads nothing until the test does: a small receive
    buffer, and a client queue of one message, so the server's sends back up."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    address = urlsplit(server.ws_url)
    raw.connect((address.hostname, address.port))
    url = f"{server.ws_url}/ws?{urlencode({'token': server.credentials.viewer})}"
    with ws_connect(url, sock=raw, max_queue=1, open_timeout=10) as ws:
        yield ws
