"""Redis and the database go away and come back; nothing is lost and no
process needs a restart. The drills stop, start and hang a MariaDB and a Redis
of their own (the `drill` fixture, tests/outages.py), never the machine's."""

import socket

import pytest
from conftest import ServerProcess, stored_files
from feed_client import assert_nothing_else_queued, connect, receive, receive_events


def post(http, body, expected=201) -> dict:
    response = http.post("/api/detect", json=body)
    assert response.status_code == expected, response.text
    return response.json()


def requires_redis_layer():
    from django.conf import settings

    if "channels_redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.fail("this test needs the Redis channel layer: set REDIS_URL")


def test_ingest_keeps_working_while_redis_is_down_and_a_resuming_client_gets_everything_after(
    drill, simulated_detection
):
    server = drill.server
    with server.device() as http:
        with connect(server) as ws:
            post(http, simulated_detection())
            last_seen = receive(ws)["seq"]
        drill.redis.stop()
        during = [post(http, simulated_detection())["id"] for _ in range(3)]
        assert drill.count("detections_detection", f"id IN ({','.join(map(str, during))})") == 3
        assert drill.count("detections_event") == 4
        drill.redis.start()

        with connect(server, after=last_seen) as ws:
            assert [m["id"] for m in receive_events(ws, 3)] == during
            live = post(http, simulated_detection())
            assert receive(ws)["id"] == live["id"]  # live delivery flows again
        with connect(server) as ws:  # and for a client that does not resume
            live = post(http, simulated_detection())
            assert receive(ws)["id"] == live["id"]
    assert server.process.poll() is None, "the server process had to restart"


def test_a_socket_that_stayed_connected_through_a_redis_restart_gets_what_it_missed_without_a_new_event(
    drill, simulated_detection
):
    server = drill.server
    with server.device() as http, connect(server) as ws:
        post(http, simulated_detection())
        receive(ws)
        drill.redis.stop()
        during = [post(http, simulated_detection())["id"] for _ in range(2)]
        drill.redis.start()

        # No further detection: the server notices the layer is back and the
        # socket reads the two from the log on its own.
        assert [m["id"] for m in receive_events(ws, 2, timeout=20)] == during
        assert_nothing_else_queued(ws)


def test_a_hanging_redis_does_not_hang_ingest(drill, simulated_detection):
    # The publish gives up after EVENT_PUBLISH_TIMEOUT (2 s); if it waited for
    # Redis the POST would outlast the client's 10 s timeout.
    with drill.redis_hanging(), drill.server.device() as http:
        stored = post(http, simulated_detection())
    assert drill.count("detections_detection", "id = %s", stored["id"]) == 1


def test_ingest_answers_503_while_the_database_is_down_then_stores_the_retry_once(drill, simulated_detection):
    server = drill.server
    body = simulated_detection()
    with server.device() as http, connect(server) as ws:
        drill.database.stop()
        refused = http.post("/api/detect", json=body)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"].isdigit()
        assert refused.json()["error"] == "database_unavailable"
        assert stored_files(server.media_root) == []  # no orphan snapshot
        assert_nothing_else_queued(ws)  # nothing was published

        drill.database.start()
        stored = post(http, body, expected=201)
        again = post(http, body, expected=200)
        assert again["id"] == stored["id"]
        assert receive(ws)["id"] == stored["id"]
    assert drill.count("detections_detection") == 1
    assert server.process.poll() is None, "the server process had to restart"


def test_an_idle_socket_on_the_redis_layer_stays_open_and_receives_after_a_minute(server, simulated_detection):
    requires_redis_layer()
    with connect(server) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=65)  # idle on purpose: this wait is what is tested
        with server.device() as http:
            stored = post(http, simulated_detection())
        assert receive(ws)["id"] == stored["id"]


def test_a_client_that_stops_reading_does_not_hold_up_the_others(server, simulated_detection):
    with connect(server) as stalled, connect(server) as reader:
        assert stalled  # connected, and never read from again
        with server.device() as http:
            ids = [post(http, simulated_detection())["id"] for _ in range(30)]
        assert [m["id"] for m in receive_events(reader, 30)] == ids


def test_two_server_processes_share_one_feed_and_one_sequence(server, simulated_detection):
    requires_redis_layer()
    with ServerProcess(server.media_root, server.credentials) as other:
        with connect(server) as on_a, connect(other) as on_b:
            ids = []
            for i in range(6):
                target = server if i % 2 else other
                with target.device() as http:
                    ids.append(post(http, simulated_detection())["id"])
            for ws in (on_a, on_b):
                events = receive_events(ws, 6)
                assert [m["seq"] for m in events] == [1, 2, 3, 4, 5, 6]
                assert [m["id"] for m in events] == ids


def test_a_database_host_that_never_answers_costs_a_request_seconds_not_a_thread(
    transactional_db, _media_root, credentials, simulated_detection
):
    """A host that accepts TCP and then says nothing (a hung server, a half-open
    firewall): DATABASE_CONNECT_TIMEOUT bounds the wait, so the server's few
    request threads are not held for the operating system's TCP timeout."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens; never accepts, never greets
        port = silent.getsockname()[1]
        silent_database = {"DATABASE_URL": f"mysql://root:@127.0.0.1:{port}/test", "DATABASE_CONNECT_TIMEOUT": "1"}
        with ServerProcess(_media_root, credentials, extra_env=silent_database) as server, server.device() as http:
            # More requests than the server has threads. Without the timeout each
            # would hang, and the client gives up after 10 s (ReadTimeout).
            for _ in range(3):
                refused = http.post("/api/detect", json=simulated_detection())
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "database_unavailable"
