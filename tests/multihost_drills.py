"""Failover drills on tests/multihost.py's deployment, shared by its tests and
benchmarks/scale_out.py: cameras post and viewers follow through the load
balancer while a host is lost, and what they went through is checked and
returned."""

import time
from collections import Counter

import multihost
from multihost_clients import Camera, Follower

# A functional deadline, not a timing target: docs/scaling.md and
# benchmarks/README.md give the measured failover times.
RECOVERY_DEADLINE = 30.0


def followers_on_both_hosts(hosts, count: int) -> list[Follower]:
    """`count` followers through the load balancer; round robin puts half on each host."""
    followers = [Follower(hosts.ws_url, hosts.credentials.viewer) for _ in range(count)]
    for follower in followers:
        follower.start()
        follower.wait_until(lambda f: f.host is not None, RECOVERY_DEADLINE, "not connected")
    assert {f.host for f in followers} == set(multihost.APP_HOSTS), [f.host for f in followers]
    return followers


def head(hosts) -> int:
    seqs = hosts.event_seqs()
    return seqs[-1] if seqs else 0


def assert_every_event_once_in_order(followers: list[Follower], first_seq: int, last_seq: int):
    """Each follower saw every event from first_seq to last_seq once, in order: no gap, no duplicate."""
    expected = list(range(first_seq, last_seq + 1))
    for follower in followers:
        seen = [seq for seq in follower.seqs if seq >= first_seq]
        assert seen == expected, (
            f"gaps {sorted(set(expected) - set(seen))[:10]}, duplicates "
            f"{[s for s, n in Counter(seen).items() if n > 1][:10]}, connections {follower.connections}"
        )


def assert_every_acknowledged_detection_stored_once(hosts, cameras: list[Camera]):
    acknowledged = [posted.id for camera in cameras for posted in camera.stored]
    assert acknowledged, "no camera stored anything"
    assert len(set(acknowledged)) == len(acknowledged), "one detection acknowledged twice under two ids"
    stored = {
        detection_id
        for (detection_id,) in hosts.database.query(
            "SELECT id FROM detections_detection WHERE id IN (" + ",".join(map(str, acknowledged)) + ")"
        )
    }
    assert stored == set(acknowledged), f"acknowledged but not stored: {sorted(set(acknowledged) - stored)}"
    duplicates = hosts.database.query(
        "SELECT tracking_id, COUNT(*) FROM detections_detection GROUP BY camera_id, tracking_id HAVING COUNT(*) > 1"
    )
    assert duplicates == [], f"stored twice: {duplicates}"


def finish(hosts, posting: list[Camera], watching: list[Follower], first_seq: int):
    """Stop the cameras, let every follower reach the last event, and check that
    nothing was lost, repeated or stored twice."""
    for camera in posting:
        camera.stop()
    last = head(hosts)
    for follower in watching:
        follower.wait_for_seq(last, timeout=RECOVERY_DEADLINE)
    assert_every_event_once_in_order(watching, first_seq, last)
    assert_every_acknowledged_detection_stored_once(hosts, posting)


def drill(hosts, lose_host, *, followers: int = 6, cameras: int = 2) -> dict:
    """Cameras post and followers follow through the load balancer while
    `lose_host()` takes app2 away; returns what the clients went through."""
    watching = followers_on_both_hosts(hosts, followers)
    posting = [Camera(hosts.url, hosts.credentials.device, camera=name) for name in ("gate-1", "gate-2")[:cameras]]
    try:
        first = head(hosts) + 1
        for camera in posting:
            camera.start()
        on_the_lost_host = [f for f in watching if f.host == "app2"]
        for follower in watching:
            follower.wait_for_seq(first + 10)
        before = {id(f): len(f.connections) for f in watching}

        lost_at = time.monotonic()
        lose_host()
        head_when_lost = head(hosts)
        for follower in on_the_lost_host:
            follower.wait_until(
                lambda f: len(f.connections) > before[id(f)] and f.host == "app1" and f.last_seq >= head_when_lost,
                RECOVERY_DEADLINE,
                "not back on app1 and caught up",
            )
        caught_up = time.monotonic() - lost_at
        # The cameras carry on through the host that is left.
        stored_when_back = sum(len(c.stored) for c in posting)
        for camera in posting:
            camera.wait_for_stored(len(camera.stored) + 10, RECOVERY_DEADLINE)
        finish(hosts, posting, watching, first)
        stayed = [f for f in watching if f not in on_the_lost_host]
        assert all(len(f.connections) == before[id(f)] for f in stayed), "a socket on the surviving host was dropped"
        return {
            "moved": len(on_the_lost_host),
            "caught_up_seconds": caught_up,
            "stored_after_loss": sum(len(c.stored) for c in posting) - stored_when_back,
            "camera_errors": [e for c in posting for e in c.errors],
        }
    finally:
        for camera in posting:
            camera.stop()
        for follower in watching:
            follower.stop()
