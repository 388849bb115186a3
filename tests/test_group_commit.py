"""Single POSTs that arrive together are written in one transaction, each still
answered on its own; a 201 is committed before it is sent."""

import asyncio
import os
import re
import signal
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from conftest import Credentials, ServerProcess, detection_body, image_bytes, store_detection
from feed_client import connect, receive_events
from helpers import assert_counters_match_the_table

from detections.core import images, writes
from detections.core.device_keys import revoke_device_keys
from detections.models import Camera, Detection, DeviceKey, Event

GROUP_SIZE_COUNT = re.compile(r"^vehicle_monitor_ingest_group_size_count (\S+)$", re.MULTILINE)
GROUP_SIZE_SUM = re.compile(r"^vehicle_monitor_ingest_group_size_sum (\S+)$", re.MULTILINE)


def groups_committed(server) -> tuple[int, int]:
    """(transactions, detections) the server's group commit has written so far."""
    text = server.metrics().text
    return int(float(GROUP_SIZE_COUNT.search(text).group(1))), int(float(GROUP_SIZE_SUM.search(text).group(1)))


async def post_together(server, bodies: list[dict]) -> list[httpx.Response]:
    """POST every body at once, each on a connection of its own."""
    headers = Credentials.header(server.credentials.device)
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30, limits=limits) as client:
        return await asyncio.gather(*(client.post("/api/detect", json=body) for body in bodies))


def mixed_bodies() -> tuple[list[dict], list[str]]:
    """50 bodies: 30 new detections, 10 repeats of 5 of them, 10 invalid ones; what each must get."""
    new = [
        detection_body(id=f"new-{n}", camera=("gate-1", "gate-2")[n % 2], time=f"2026-11-24T08:{n:02d}:00Z")
        for n in range(30)
    ]
    repeats = [dict(new[n % 5]) for n in range(10)]
    invalid = [detection_body(id=f"bad-{n}", vehicle_type="spaceship") for n in range(5)]
    invalid += [detection_body(id=f"bad-img-{n}", vehicle_img="not base64!") for n in range(5)]
    bodies = new + repeats + invalid
    expected = ["new"] * 30 + ["repeat"] * 10 + ["invalid"] * 10
    return bodies, expected


@pytest.mark.parametrize("linger_ms", ["20", "0"], ids=["grouped", "one-by-one"])
def test_fifty_concurrent_posts_of_new_duplicate_and_invalid_detections_each_get_their_own_answer(
    transactional_db, _media_root, credentials, linger_ms
):
    bodies, expected = mixed_bodies()
    env = {"INGEST_GROUP_LINGER_MS": linger_ms}
    with ServerProcess(_media_root, credentials, env) as server, connect(server) as ws:
        responses = asyncio.run(post_together(server, bodies))
        messages = receive_events(ws, 30)

    by_id: dict[str, set] = {}
    for body, kind, response in zip(bodies, expected, responses, strict=True):
        if kind == "invalid":
            assert response.status_code == 400, response.text
            assert response.json()["field"] in ("vehicle_type", "vehicle_img")
        else:
            assert response.status_code in (200, 201), response.text
            by_id.setdefault(body["id"], set()).add((response.status_code, response.json()["id"]))
    # Each detection was created once (one 201), and every repeat named the same row.
    for answers in by_id.values():
        assert len({row_id for _, row_id in answers}) == 1
        assert sorted(status for status, _ in answers).count(201) == 1
    assert sum(1 for r in responses if r.status_code == 201) == 30

    # What posting them one by one gives: 30 rows, 30 events numbered 1..30 in
    # commit order, each counting the detections stored after it.
    assert Detection.objects.count() == 30
    assert_counters_match_the_table()
    events = list(Event.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, 31))
    assert [e.payload["count"] for e in events] == list(range(1, 31))
    assert sorted(e.payload["tracking_id"] for e in events) == sorted(f"new-{n}" for n in range(30))
    # The socket got every event once, in seq order, as the log holds it.
    assert [m["seq"] for m in messages] == list(range(1, 31))
    assert [m["id"] for m in messages] == [e.detection_id for e in events]
    assert all(m["image"] for m in messages)


@pytest.mark.parametrize(("linger_ms", "most_transactions"), [("20", 2), ("0", 8)], ids=["grouped", "one-by-one"])
def test_eight_concurrent_posts_share_transactions_only_when_the_linger_allows(
    transactional_db, _media_root, credentials, linger_ms, most_transactions
):
    bodies = [detection_body(id=f"together-{n}") for n in range(8)]
    with ServerProcess(_media_root, credentials, {"INGEST_GROUP_LINGER_MS": linger_ms}) as server:
        responses = asyncio.run(post_together(server, bodies))
        transactions, written = groups_committed(server)

    assert [r.status_code for r in responses] == [201] * 8
    assert written == 8
    if linger_ms == "0":
        assert transactions == 8
    else:
        assert transactions <= most_transactions


def test_a_detection_answered_201_is_stored_even_when_the_server_is_killed_right_after(
    transactional_db, _media_root, credentials
):
    answered: list[int] = []

    async def post_until_killed(server):
        headers = Credentials.header(server.credentials.device)
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as client:

            async def post(n):
                try:
                    response = await client.post("/api/detect", json=detection_body(id=f"kill-{n}"))
                except httpx.HTTPError:
                    return  # in flight when the server died: not acknowledged, may or may not be stored
                if response.status_code == 201:
                    answered.append(response.json()["id"])
                    if len(answered) == 10:
                        os.kill(server.process.pid, signal.SIGKILL)

            await asyncio.gather(*(post(n) for n in range(200)))

    with ServerProcess(_media_root, credentials) as server:
        asyncio.run(post_until_killed(server))
        assert server.process.wait(timeout=10) == -signal.SIGKILL

    assert len(answered) >= 10
    stored = set(Detection.objects.filter(pk__in=answered).values_list("pk", flat=True))
    assert stored == set(answered)
    assert Event.objects.filter(detection_id__in=answered, kind="new_detection").count() == len(answered)


def test_a_revoked_device_key_is_refused_by_every_process_once_the_cache_time_has_passed(
    transactional_db, _media_root, credentials
):
    env = {"DEVICE_KEY_CACHE_SECONDS": "1"}
    with (
        ServerProcess(_media_root, credentials, env) as a,
        ServerProcess(_media_root, credentials, env) as b,
    ):
        for n, server in enumerate((a, b)):
            with server.device() as http:
                assert http.post("/api/detect", json=detection_body(id=f"before-{n}")).status_code == 201
        revoke_device_keys(DeviceKey.objects.all())
        # The time the setting allows, passing: the subject of this test, not a wait for an event.
        asyncio.run(asyncio.sleep(1.2))
        for n, server in enumerate((a, b)):
            with server.device() as http:
                refused = http.post("/api/detect", json=detection_body(id=f"after-{n}"))
            assert refused.status_code == 401
            assert refused.json()["error"] == "authentication_failed"


def group_of(n: int, camera: Camera, prefix: str = "g") -> list[writes.NewDetection]:
    image = images.verify(image_bytes())
    moment = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    return [
        writes.NewDetection(
            camera=camera, tracking_id=f"{prefix}-{i}", vehicle_type="car", detected_at=moment, image=image
        )
        for i in range(n)
    ]


@pytest.mark.django_db
def test_a_group_of_eight_makes_as_few_queries_as_a_single_detection(django_assert_num_queries):
    # The warm-up also reads the watch-lists and rules (conftest: not again in the
    # test; in a process, once every ALERT_CONFIG_CHECK_SECONDS, not per detection).
    camera = Camera.objects.create(name="gate-1")
    writes.detections_create(group_of(1, camera, "warm-up"))  # the camera's last seen is written at most every 30 s
    # The stored detections with those keys; savepoint (BEGIN in production);
    # the rows; two counter upserts; the feed row (update, read); the events;
    # release (COMMIT).
    with django_assert_num_queries(9):
        outcomes = writes.detections_create(group_of(8, camera, "eight"))
    assert [o.created for o in outcomes] == [True] * 8
    one = group_of(1, camera, "one")
    with django_assert_num_queries(9):
        writes.detections_create(one)


@pytest.mark.django_db
def test_a_group_answers_a_repeated_idempotency_key_and_a_conflicting_one_item_by_item():
    stored = store_detection("stored-before")
    one, other = (replace(item, idempotency_key="k-1") for item in group_of(2, Camera.objects.get(name="gate-1")))

    outcomes = writes.detections_create([one, one, other])

    assert outcomes[0].created and not outcomes[1].created
    assert outcomes[1].detection.pk == outcomes[0].detection.pk
    assert isinstance(outcomes[2], writes.IdempotencyConflict)
    assert list(Detection.objects.exclude(pk=stored.pk).values_list("tracking_id", flat=True)) == [one.tracking_id]
    assert Event.objects.order_by("-seq").first().payload["tracking_id"] == one.tracking_id
