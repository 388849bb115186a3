"""Health and metrics: /healthz says the process is up; /readyz says whether the
database and the channel layer answer, and which does not; /metrics gives
Prometheus the ingest, socket and publish counters, and nobody else. The outage tests stop,
start and hang a MariaDB and a Redis of their own (the `drill` fixture), never
the machine's."""

import time

import httpx
import pytest
from conftest import ServerProcess, detection_body
from feed_client import connect, receive
from prometheus_client.parser import text_string_to_metric_families

from vehicle_monitor.networks import parse_networks


def requires_redis_layer():
    from django.conf import settings

    if "channels_redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.fail("this test needs the Redis channel layer: set REDIS_URL")


def readiness(server) -> tuple[int, dict]:
    response = httpx.get(f"{server.base_url}/readyz", timeout=10)
    return response.status_code, response.json()


# --- /healthz and /readyz ---------------------------------------------------------------------


def test_healthz_answers_ok_without_credentials(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_the_database_and_the_channel_layer_answer(server):
    status, body = readiness(server)

    assert status == 200
    assert body["status"] == "ready"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "channel_layer": "ok",
    }
    assert "failing" not in body


def test_readyz_is_ready_while_sockets_wait_on_an_idle_feed(server):
    """The feed's receive is waiting on the channel layer (a socket is connected
    and nothing happens): the check's own message must still come back."""
    requires_redis_layer()
    with connect(server) as ws:
        ws.send('{"type": "ping"}')
        assert receive(ws) == {"type": "pong"}
        for _ in range(3):
            status, body = readiness(server)
            assert status == 200, body


def test_readyz_reports_the_channel_layer_down_and_ready_again_when_redis_returns(drill):
    server = drill.server
    assert readiness(server)[0] == 200

    drill.redis.stop()
    status, body = readiness(server)
    assert status == 503
    assert body["status"] == "unready"
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"]["status"] == "failing"
    assert "Error" in body["checks"]["channel_layer"]["error"]
    assert body["checks"]["database"]["status"] == "ok"

    drill.redis.start()
    status, body = readiness(server)
    assert (status, body["status"]) == (200, "ready"), body
    assert server.process.poll() is None, "the server process had to restart"


def test_readyz_reports_the_database_down_and_ready_again_when_mariadb_returns(drill):
    server = drill.server
    assert readiness(server)[0] == 200

    drill.database.stop()
    status, body = readiness(server)
    assert status == 503
    assert body["failing"] == ["database"]
    assert body["checks"]["database"]["status"] == "failing"
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert body["checks"]["channel_layer"]["status"] == "ok"

    drill.database.start()
    status, body = readiness(server)
    assert (status, body["status"]) == (200, "ready"), body
    assert server.process.poll() is None, "the server process had to restart"


def test_readyz_reports_a_hanging_redis_within_the_check_timeout(drill):
    with drill.redis_hanging():
        started = time.monotonic()
        status, body = readiness(drill.server)
        elapsed = time.monotonic() - started

    assert status == 503
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"]["error"] == "no answer within 2 s"
    assert elapsed < 8


# --- /metrics -------------------------------------------------------------------------------------


def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample on /metrics: (name, sorted labels) -> value."""
    response = server.metrics()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(read, expected, timeout=10.0):
    """Poll `read()` until it equals `expected`: what the server does after it
    has answered (publishing, a socket's disconnect) sends the test nothing to
    wait on."""
    deadline = time.monotonic() + timeout
    while (current := read()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"still {current!r}, expected {expected!r}")
        time.sleep(0.05)


def test_metrics_expose_every_series_by_name_and_type(server):
    text = server.metrics().text

    families = {family.name: family.type for family in text_string_to_metric_families(text)}

    assert families["vehicle_monitor_detections_ingested"] == "counter"
    assert families["vehicle_monitor_ingest_latency_seconds"] == "histogram"
    assert families["vehicle_monitor_sockets_connected"] == "gauge"
    assert families["vehicle_monitor_events_published"] == "counter"
    assert families["vehicle_monitor_events_publish_failed"] == "counter"
    assert families["vehicle_monitor_http_requests_in_flight"] == "gauge"
    assert families["vehicle_monitor_http_requests_refused"] == "counter"


def test_an_ingest_moves_the_ingested_latency_and_published_counters(server):
    before = scrape(server)

    with server.device() as device:
        assert device.post("/api/detect", json=detection_body(camera="yard", vehicle_type="Bus")).status_code == 201
        assert device.post("/api/detect", json=detection_body(camera="yard", vehicle_type="Bus")).status_code == 200
    after = scrape(server)

    ingested = "vehicle_monitor_detections_ingested_total"
    assert (
        value(after, ingested, camera="yard", vehicle_type="bus")
        - value(before, ingested, camera="yard", vehicle_type="bus")
        == 1
    )  # the retry stored nothing new
    latency = "vehicle_monitor_ingest_latency_seconds_count"
    assert value(after, latency) - value(before, latency) == 2  # both requests were answered
    # The server publishes after it answers, from its event loop.
    published = "vehicle_monitor_events_published_total"
    eventually(
        lambda: value(scrape(server), published, kind="new_detection"),
        value(before, published, kind="new_detection") + 1,
    )
    assert value(after, "vehicle_monitor_ingest_latency_seconds_sum") > value(
        before, "vehicle_monitor_ingest_latency_seconds_sum"
    )


def test_a_publish_that_fails_while_redis_is_down_is_counted(drill):
    server = drill.server
    failed = "vehicle_monitor_events_publish_failed_total"
    before = value(scrape(server), failed, kind="new_detection")

    drill.redis.stop()
    with server.device() as device:
        assert device.post("/api/detect", json=detection_body()).status_code == 201
    # The publish is tried after the answer: it fails while Redis is still down.
    eventually(lambda: value(scrape(server), failed, kind="new_detection"), before + 1)


def test_the_sockets_gauge_follows_connections(server):
    gauge = "vehicle_monitor_sockets_connected"
    assert value(scrape(server), gauge) == 0

    with connect(server) as first, connect(server) as second:
        for ws in (first, second):  # the handshake is done: both are counted
            ws.send('{"type": "ping"}')
            assert receive(ws) == {"type": "pong"}
        assert value(scrape(server), gauge) == 2

    eventually(lambda: value(scrape(server), gauge), 0)


def test_a_refused_socket_is_not_counted(server):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    with ws_connect(f"{server.ws_url}/ws", open_timeout=10) as anonymous:
        with pytest.raises(ConnectionClosed) as closed:
            anonymous.recv(timeout=10)
    assert closed.value.rcvd.code == 4401

    assert value(scrape(server), "vehicle_monitor_sockets_connected") == 0


def test_in_multiprocess_mode_any_process_shows_the_sum_over_the_host(server, tmp_path):
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with (
        ServerProcess(server.media_root, server.credentials, extra_env=shared) as first,
        ServerProcess(server.media_root, server.credentials, extra_env=shared) as second,
    ):
        for n, process in enumerate((first, second, second)):
            with process.device() as device:
                body = detection_body(id=f"trk-{n}", camera="gate-2", vehicle_type="van")
                assert device.post("/api/detect", json=body).status_code == 201
        ingested = "vehicle_monitor_detections_ingested_total"
        for process in (first, second):
            assert value(scrape(process), ingested, camera="gate-2", vehicle_type="van") == 3
        with connect(first):
            assert value(scrape(second), "vehicle_monitor_sockets_connected") == 1


# --- Who may read /metrics --------------------------------------------------------------------------
# (`db`: a scrape counts the webhook messages in the database.)


def test_metrics_are_not_served_while_no_setting_says_to_whom(db, client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "METRICS_TOKEN" in response.json()["detail"]


def test_in_debug_metrics_are_served_while_no_setting_says_to_whom(db, client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS, settings.DEBUG = "", [], True

    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "authorization, status, error",
    [
        (None, 401, "not_authenticated"),
        ("Bearer", 401, "not_authenticated"),
        ("Bearer wrong-token", 401, "authentication_failed"),
        ("Bearer s3cret-tokenX", 401, "authentication_failed"),
        ("Token s3cret-token", 401, "authentication_failed"),
        ("Bearer s3cret-token", 200, None),
        ("bearer s3cret-token", 200, None),
    ],
)
def test_metrics_need_the_bearer_token_when_one_is_set(db, client, settings, authorization, status, error):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "s3cret-token", []
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.get("/metrics", **headers)

    assert response.status_code == status, response.content
    if error:
        assert response.json()["error"] == error
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    else:
        assert response["Content-Type"].startswith("text/plain; version=")


@pytest.mark.parametrize(
    "networks, client_address, status",
    [
        (["127.0.0.0/8"], "127.0.0.1", 200),
        (["10.0.0.0/8", "192.168.1.7"], "192.168.1.7", 200),
        # An IPv4 scraper seen through a dual-stack socket.
        (["10.0.0.0/8"], "::ffff:10.1.2.3", 200),
        (["2001:db8::/32"], "2001:db8::1", 200),
        (["10.0.0.0/8"], "127.0.0.1", 403),
        (["10.0.0.0/8"], "", 403),
    ],
)
def test_metrics_are_served_to_the_allowed_networks_only(db, client, settings, networks, client_address, status):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = parse_networks("METRICS_ALLOWED_NETWORKS", networks)

    response = client.get("/metrics", REMOTE_ADDR=client_address)

    assert response.status_code == status, response.content
    if status == 403:
        assert response.json()["error"] == "permission_denied"


def test_with_both_settings_a_scraper_needs_the_allowed_network_or_the_token(db, client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = parse_networks("METRICS_ALLOWED_NETWORKS", ["10.0.0.0/8"])

    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 401
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    )


def test_the_production_server_serves_metrics_with_its_token_only(server):
    assert server.metrics().status_code == 200
    assert httpx.get(f"{server.base_url}/metrics", timeout=10).status_code == 401


def test_the_production_server_without_a_metrics_setting_answers_404(transactional_db, _media_root, credentials):
    with ServerProcess(_media_root, credentials, {"METRICS_TOKEN": ""}) as server:
        response = server.metrics()

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
