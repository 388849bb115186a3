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
from django.conf import settings
from multihost_clients import Camera
from multihost_drills import (
    RECOVERY_DEADLINE,
    assert_every_event_once_in_order,
    drill,
    finish,
    followers_on_both_hosts,
    head,
)
from overload_clients import ACTIONABLE, HeldRequest, flood
from redis_processes import wait_for

from vehicle_monitor.admission import OVERLOADED_RETRY_AFTER_SECONDS


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


@pytest.fixture
def app1_alone(both_up):
    """app2 out of the rotation (maintenance), as the benchmark's one-host phases have it."""
    hosts = both_up
    hosts.balancer.drain("app2")
    hosts.balancer.wait_for({"app1": "UP", "app2": "MAINT"})
    yield hosts
    hosts.balancer.admit("app2")


def test_haproxy_holds_at_most_its_share_of_requests_at_a_host_and_answers_the_queue_503_with_retry_after(
    app1_alone,
):
    hosts = app1_alone
    # The host's own limit is never what a client of the load balancer meets.
    assert multihost.MAX_PER_HOST < settings.HTTP_MAX_IN_FLIGHT
    downs = hosts.balancer.check_downs()
    held = [HeldRequest(hosts.url, hosts.credentials.device) for _ in range(multihost.MAX_PER_HOST)]
    try:
        wait_for(
            lambda: hosts.balancer.in_progress()["app1"] == multihost.MAX_PER_HOST,
            f"HAProxy to have {multihost.MAX_PER_HOST} requests in progress at app1",
            RECOVERY_DEADLINE,
            interval=0.1,
        )
        # The host answers its probe beside them: HAProxy's checks keep it in the rotation.
        assert httpx.get(f"{hosts.servers['app1'].base_url}/healthz", timeout=10).status_code == 200
        with httpx.Client(base_url=hosts.url, timeout=RECOVERY_DEADLINE) as http:
            queued = http.post(
                "/api/detect",
                json=detection_body(id="queued-too-long"),
                headers={"Authorization": f"Token {hosts.credentials.device}"},
            )
        # HAProxy's own answer once the queue timeout passed: no host named, nothing stored.
        assert queued.status_code == 503, queued.text
        assert "X-Served-By" not in queued.headers
        assert queued.json()["error"] == "overloaded"
        assert queued.headers["Retry-After"] == str(OVERLOADED_RETRY_AFTER_SECONDS)
        answers = [request.finish() for request in held]
        assert [answer.status for answer in answers] == [201] * len(held), [a.body[:200] for a in answers]
    finally:
        for request in held:
            request.abandon()
    assert hosts.balancer.states()["app1"].startswith("UP")
    assert hosts.balancer.check_downs() == downs, "the checks counted a busy host down"
    assert not hosts.database.query("SELECT id FROM detections_detection WHERE tracking_id = 'queued-too-long'"), (
        "a request HAProxy refused was stored"
    )


def test_a_host_at_its_cpu_cap_answers_a_flood_straight_or_through_haproxy_with_statuses_a_camera_can_act_on(
    app1_alone,
):
    hosts = app1_alone
    downs = hosts.balancer.check_downs()
    # Straight to the host: three times its limit in flight; through HAProxy: eight times
    # what HAProxy lets in at once, more than the host drains within the queue timeout.
    for where, url, in_flight in (
        ("app1 straight", hosts.servers["app1"].base_url, 3 * settings.HTTP_MAX_IN_FLIGHT),
        ("through HAProxy", hosts.url, 8 * multihost.MAX_PER_HOST),
    ):
        result = flood(url, hosts.credentials.device, in_flight=in_flight, each=3)
        print(f"{where}: {dict(result.statuses)}, {len(result.exceptions)} exceptions")
        assert not result.exceptions, f"{where}: {result.exceptions[:5]}"
        assert set(result.statuses) <= ACTIONABLE, f"{where}: {result.statuses}"
        assert not result.without_retry_after, f"{where}: {result.without_retry_after[:5]}"
        assert result.stored_ids, f"{where}: nothing stored"
        stored = {
            detection_id
            for (detection_id,) in hosts.database.query(
                "SELECT id FROM detections_detection WHERE id IN (" + ",".join(map(str, result.stored_ids)) + ")"
            )
        }
        assert stored == set(result.stored_ids), f"{where}: answered 201 but not stored"
    assert hosts.balancer.check_downs() == downs, "the checks counted a host at its CPU cap down"


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
