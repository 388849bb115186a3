"""Two application hosts behind a load balancer, one data host (tests/multihost.py):
what a deployment on several machines must survive, proved through the load
balancer with real processes, real sockets and real network links.

The hosts are built once for the module (about 15 s) and every test leaves
both application hosts up and in the rotation for the next one.
"""

from collections import Counter

import httpx
import multihost
import pytest
from conftest import b64, detection_body, image_bytes
from multihost_clients import Camera
from multihost_drills import (
    RECOVERY_DEADLINE,
    assert_every_event_once_in_order,
    drill,
    finish,
    followers_on_both_hosts,
    head,
)
from redis_processes import wait_for


@pytest.fixture(scope="module")
def hosts():
    if problem := multihost.available():
        raise RuntimeError(problem)
    with multihost.deployment() as running:
        yield running


@pytest.fixture
def both_up(hosts):
    """Both application hosts running, connected and in the rotation, before and after the test."""
    yield hosts
    for name in multihost.APP_HOSTS:
        hosts.hosts[name].mend()
        if name not in hosts.servers:
            hosts.start_application(name)
    hosts.balancer.wait_for({name: "UP" for name in multihost.APP_HOSTS})


def test_a_detection_posted_on_one_host_reaches_sockets_on_the_other_in_one_sequence(hosts):
    followers = followers_on_both_hosts(hosts, 4)
    try:
        first = head(hosts) + 1
        served = Counter()
        with httpx.Client(base_url=hosts.url, headers={"Authorization": f"Token {hosts.credentials.device}"}) as http:
            for n in range(10):
                response = http.post("/api/detect", json=detection_body(id=f"both-{n}", vehicle_img=...))
                assert response.status_code == 201, response.text
                served[response.headers["X-Served-By"]] += 1
        assert set(served) == set(multihost.APP_HOSTS), served
        last = head(hosts)
        assert last == first + 9, "one seq a detection, whichever host stored it"
        for follower in followers:
            follower.wait_for_seq(last)
        assert_every_event_once_in_order(followers, first, last)
    finally:
        for follower in followers:
            follower.stop()


def test_a_host_killed_outright_loses_nothing_and_its_sockets_resume_on_the_other(both_up):
    hosts = both_up
    result = drill(hosts, lambda: hosts.kill_application("app2"))
    print(f"host killed: {result}")
    assert result["moved"] >= 1
    hosts.balancer.wait_for({"app2": "DOWN"})


def test_a_host_cut_off_alive_is_noticed_and_its_sockets_resume_on_the_other(both_up):
    hosts = both_up
    result = drill(hosts, hosts.hosts["app2"].cut)
    print(f"host cut off: {result}")
    assert result["moved"] >= 1
    hosts.hosts["app2"].mend()
    # The host comes back by itself once its cable is back: the load balancer
    # counts it up again, and it serves.
    hosts.balancer.wait_for({"app2": "UP"})
    with httpx.Client(base_url=hosts.servers["app2"].base_url, timeout=10) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200, "app2 ready again", RECOVERY_DEADLINE, interval=0.2)


def test_media_written_on_one_host_is_served_and_deleted_by_the_other(hosts):
    image = image_bytes(size=(96, 64))
    device = {"Authorization": f"Token {hosts.credentials.device}"}
    staff = {"Authorization": f"Token {hosts.credentials.staff}"}
    with httpx.Client(base_url=hosts.url, timeout=10) as http:

        def on(host: str, method: str, path: str, **kwargs) -> httpx.Response:
            """The request as answered by `host` (round robin: at most a few tries)."""
            for _ in range(6):
                response = http.request(method, path, **kwargs)
                if response.headers.get("X-Served-By") == host:
                    return response
                if method != "GET":
                    raise AssertionError(f"{method} {path} served by the other host")
            raise AssertionError(f"{host} never served {method} {path}")

        def next_is(host: str):
            """Round robin: after a request the other host served, the next goes to `host`."""
            other = next(name for name in multihost.APP_HOSTS if name != host)
            for _ in range(3):
                if http.get("/healthz").headers.get("X-Served-By") == other:
                    return
            raise AssertionError(f"{other} never answered: the rotation is not both hosts")

        # A POST must not go to the wrong host and be undone: ask which one is next.
        next_is("app1")
        before = hosts.store.keys(hosts.bucket)
        created = on(
            "app1", "POST", "/api/detect", json=detection_body(id="media-1", vehicle_img=b64(image)), headers=device
        )
        assert created.status_code == 201, created.text
        record = created.json()
        files = {record[field].removeprefix("/media/") for field in ("image_url", "thumbnail_url")}
        assert hosts.store.keys(hosts.bucket) == before | files

        served = on("app2", "GET", record["image_url"], headers=staff)
        assert served.status_code == 200
        assert served.content == image

        next_is("app2")
        deleted = on("app2", "DELETE", f"/api/detections/{record['id']}/", headers=staff)
        assert deleted.status_code == 204, deleted.text
        assert hosts.store.keys(hosts.bucket) == before


def test_losing_the_redis_primary_under_both_hosts_loses_nothing(hosts):
    """Last in the module: the replica is promoted and nothing replaces it."""
    watching = followers_on_both_hosts(hosts, 4)
    posting = [Camera(hosts.url, hosts.credentials.device, camera=name) for name in ("gate-1", "gate-2")]
    try:
        first = head(hosts) + 1
        for camera in posting:
            camera.start()
        for follower in watching:
            follower.wait_for_seq(first + 10)
        hosts.redis.primary.kill()
        wait_for(lambda: hosts.redis.all_agree_on_the_primary(hosts.redis.replica), "the failover", RECOVERY_DEADLINE)
        # Ingest carried on all along, and goes on on the promoted replica.
        for camera in posting:
            camera.wait_for_stored(len(camera.stored) + 10, RECOVERY_DEADLINE)
        finish(hosts, posting, watching, first)
        assert not [e for camera in posting for e in camera.errors], "a POST failed while Redis failed over"
    finally:
        for camera in posting:
            camera.stop()
        for follower in watching:
            follower.stop()
