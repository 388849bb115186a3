"""Redis behind Sentinel: the primary is lost, a replica is promoted, and
nothing is lost and no process needs a restart. These tests start Redis
servers and Sentinels of their own (tests/redis_processes.py) and stop them
afterwards; the machine's Redis is not touched."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import ROOT, ServerProcess, api_client, detection_body, free_port
from django.core.exceptions import ImproperlyConfigured
from feed_client import assert_nothing_else_queued, connect, receive, receive_events
from redis_processes import MASTER_NAME, PASSWORD, SENTINEL_PASSWORD, sentinel_cluster

from detections.api import throttling
from detections.models import Detection
from vehicle_monitor.redis_clients import RedisLocation, redis_location

# How long the Sentinels may take to promote the replica, and the server to be
# ready on it, before the test gives up (about 2 s each here).
FAILOVER_DEADLINE = 30.0


def post(http, body) -> dict:
    response = http.post("/api/detect", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def sentinels_with_one_down(cluster) -> str:
    """REDIS_SENTINELS naming the cluster's Sentinels after one that is not there
    (its host is down for maintenance, say): clients must skip it at once."""
    return f"127.0.0.1:{free_port()},{cluster.sentinels_setting}"


def sentinel_environment(cluster) -> dict:
    """A server process's variables for `cluster`, and no REDIS_URL."""
    return {
        "REDIS_URL": "",
        "REDIS_SENTINELS": sentinels_with_one_down(cluster),
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
        "REDIS_PASSWORD": PASSWORD,
        "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        "CHANNEL_LAYER_PREFIX": f"vm-sentinel-{uuid.uuid4().hex[:8]}",
    }


def test_losing_the_redis_primary_loses_no_detection_and_live_delivery_recovers_by_itself(
    transactional_db, _media_root, credentials, simulated_detection
):
    with (
        sentinel_cluster() as cluster,
        ServerProcess(_media_root, credentials, extra_env=sentinel_environment(cluster)) as server,
        server.device() as http,
    ):
        assert http.get("/readyz").status_code == 200
        with connect(server) as ws:
            first = post(http, simulated_detection())
            seen = receive(ws)
            assert seen["id"] == first["id"]

            cluster.primary.kill()
            killed = time.monotonic()
            # Ingest carries on all along: through the seconds the primary is
            # merely unreachable, then down, then replaced.
            during = []
            while not cluster.all_agree_on_the_primary(cluster.replica):
                during.append(post(http, simulated_detection())["id"])
                assert time.monotonic() - killed < FAILOVER_DEADLINE, "no failover:\n" + cluster.logs()
            promoted_after = time.monotonic() - killed
            while (ready := http.get("/readyz")).status_code != 200:
                during.append(post(http, simulated_detection())["id"])
                assert time.monotonic() - killed < FAILOVER_DEADLINE, ready.text
            ready_after = time.monotonic() - killed
            print(f"replica promoted {promoted_after:.1f} s after the kill, /readyz 200 after {ready_after:.1f} s")

            # The socket that stayed connected gets every detection it missed
            # (read from the log once the layer is back) and then live ones, each once.
            after = post(http, simulated_detection())["id"]
            expected = [*during, after]
            assert [m["id"] for m in receive_events(ws, len(expected), timeout=20)] == expected
            assert_nothing_else_queued(ws)

        with connect(server, after=seen["seq"]) as resumed:
            assert [m["id"] for m in receive_events(resumed, len(expected))] == expected
            assert_nothing_else_queued(resumed)
            live = post(http, simulated_detection())
            assert receive(resumed)["id"] == live["id"]
        assert server.process.poll() is None, "the server process had to restart"
    assert Detection.objects.count() == len(expected) + 2


@pytest.fixture
def throttle_client():
    """The rate limiter's client is made once per process: again for each test here."""
    throttling._redis_client.cache_clear()
    yield
    throttling._redis_client.cache_clear()


def test_the_rate_limit_counts_on_the_primary_found_through_sentinel(cameras, settings, throttle_client):
    from detections.core.device_keys import issue_device_key

    with sentinel_cluster() as cluster:
        settings.REDIS = redis_location(
            sentinels=sentinels_with_one_down(cluster),
            master_name=MASTER_NAME,
            password=PASSWORD,
            sentinel_password=SENTINEL_PASSWORD,
        )
        settings.DEVICE_RATE_LIMIT = "3/m"
        _, key = issue_device_key(cameras=list(cameras.values()), label="rate")
        client = api_client(key)

        started = time.monotonic()
        statuses = [client.post("/api/detect", detection_body(id=str(n)), format="json").status_code for n in range(4)]

        assert statuses == [201, 201, 201, 429]
        # Not held by retries of the missing Sentinel (redis-py's default would
        # back off for seconds).
        assert time.monotonic() - started < 2
        counted = cluster.primary.client().keys("rate:device:*")
        assert len(counted) == 1
        assert cluster.primary.client().get(counted[0]) == "4"


# --- Configuration ---------------------------------------------------------------------------


def test_sentinel_settings_give_the_channel_layer_its_sentinel_form():
    location = redis_location(
        sentinels="10.0.0.1:26379, sentinel-2.internal:26380,[fd00::3]:26379",
        master_name="mymaster",
        password="p",
        sentinel_password="s",
    )

    host = location.channel_layer_host()

    assert host["sentinels"] == [("10.0.0.1", 26379), ("sentinel-2.internal", 26380), ("fd00::3", 26379)]
    assert host["master_name"] == "mymaster"
    assert host["password"] == "p"
    assert host["sentinel_kwargs"]["password"] == "s"
    assert host["sentinel_kwargs"]["socket_timeout"] > 0
    assert "socket_timeout" not in host  # the layer's blocking receive must not time out


def test_a_redis_url_alone_is_one_server_and_nothing_is_no_redis():
    assert redis_location(url="redis://r:6379/0") == RedisLocation(url="redis://r:6379/0")
    assert redis_location(url="redis://r:6379/0").channel_layer_host() == "redis://r:6379/0"
    assert redis_location() is None


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"sentinels": "127.0.0.1:26379"}, "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not"),
        ({"master_name": "mymaster"}, "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not"),
        ({"url": "redis://r:6379/0", "password": "p"}, "REDIS_PASSWORD is set but REDIS_SENTINELS is not"),
        (
            {"url": "redis://r:6379/0", "sentinels": "127.0.0.1:26379", "master_name": "m"},
            "REDIS_URL and REDIS_SENTINELS are both set",
        ),
        ({"sentinels": "sentinel-1", "master_name": "m"}, "entry 'sentinel-1' is not host:port"),
        ({"sentinels": "a:26379,b:port", "master_name": "m"}, "entry 'b:port' is not host:port"),
        ({"sentinels": "a:0", "master_name": "m"}, "entry 'a:0' is not host:port"),
        ({"sentinels": ":26379", "master_name": "m"}, "entry ':26379' is not host:port"),
        ({"sentinels": " , ", "master_name": "m"}, "REDIS_SENTINELS names no Sentinel"),
    ],
    ids=[
        "no-master",
        "no-sentinels",
        "password-with-url",
        "url-and-sentinels",
        "no-port",
        "bad-port",
        "port-0",
        "no-host",
        "empty",
    ],
)
def test_a_redis_configuration_that_cannot_be_meant_is_refused_with_a_sentence(variables, says):
    with pytest.raises(ImproperlyConfigured, match=says):
        redis_location(**variables)


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER is not"),
        ({"REDIS_SENTINELS": "127.0.0.1", "REDIS_SENTINEL_MASTER": "mymaster"}, "is not host:port"),
    ],
    ids=["no-master", "no-port"],
)
def test_the_process_refuses_to_start_on_a_bad_sentinel_configuration(variables, says):
    env = {**os.environ, "REDIS_URL": "", **variables}

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0, result.stdout + result.stderr
    assert "ImproperlyConfigured" in result.stderr, result.stderr
    assert says in result.stderr, result.stderr
