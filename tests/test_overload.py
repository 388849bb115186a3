"""A server process at its limit of requests in flight (HTTP_MAX_IN_FLIGHT):
the next request is answered at once with 503 overloaded and Retry-After,
nothing stored; the probes, /metrics and the socket are still served; once
the requests in progress are answered, the process takes requests again.
(Through HAProxy, and at a host's CPU cap: tests/test_multihost.py.)"""

import httpx
import pytest
from conftest import ServerProcess, detection_body
from feed_client import connect, receive
from overload_clients import HeldRequest
from processes import wait_until
from prometheus_client.parser import text_string_to_metric_families

from vehicle_monitor.admission import OVERLOADED_RETRY_AFTER_SECONDS

LIMIT = 3


@pytest.fixture
def limited_server(transactional_db, _media_root, credentials):
    with ServerProcess(_media_root, credentials, {"HTTP_MAX_IN_FLIGHT": str(LIMIT)}) as process:
        yield process


def metric(server, name: str, **labels) -> float:
    text = server.metrics().text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def in_flight(server) -> float:
    return metric(server, "vehicle_monitor_http_requests_in_flight")


def hold_the_limit(server) -> list[HeldRequest]:
    held = [HeldRequest(server.base_url, server.credentials.device) for _ in range(LIMIT)]
    # The server counts a request from its headers on: wait until it has all of them.
    wait_until(lambda: in_flight(server), LIMIT, f"{LIMIT} requests in progress on the server", timeout=20)
    return held


def test_the_request_past_the_limit_is_answered_at_once_with_503_and_retry_after_and_nothing_stored(limited_server):
    server = limited_server
    held = hold_the_limit(server)
    try:
        with server.device() as device:
            refused = device.post("/api/detect", json=detection_body(id="one-too-many"))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "overloaded"
            assert refused.headers["Retry-After"] == str(OVERLOADED_RETRY_AFTER_SECONDS)
            assert refused.headers["Content-Type"] == "application/json"

            answers = [request.finish() for request in held]
            assert [answer.status for answer in answers] == [201] * LIMIT, [a.body for a in answers]

            # The same connection, once the server has room: the detection is stored now, once.
            again = device.post("/api/detect", json=detection_body(id="one-too-many"))
            assert again.status_code == 201, again.text
    finally:
        for request in held:
            request.abandon()
    assert metric(server, "vehicle_monitor_http_requests_refused_total", reason="overloaded") == 1
    with server.http(server.credentials.viewer) as viewer:
        tracking_ids = [d["tracking_id"] for d in viewer.get("/api/detections/").json()["results"]]
    assert tracking_ids.count("one-too-many") == 1


def test_the_probes_the_metrics_and_the_socket_are_served_at_the_limit(limited_server):
    server = limited_server
    held = hold_the_limit(server)
    try:
        for path in ("/healthz", "/readyz"):
            response = httpx.get(f"{server.base_url}{path}", timeout=10)
            assert response.status_code == 200, (path, response.text)
        response = server.metrics()
        assert response.status_code == 200, response.text
        with connect(server) as ws:
            answers = [request.finish() for request in held]
            assert [answer.status for answer in answers] == [201] * LIMIT
            events = [receive(ws) for _ in range(LIMIT)]
        assert sorted(event["id"] for event in events) == sorted(answer.json()["id"] for answer in answers)
    finally:
        for request in held:
            request.abandon()
