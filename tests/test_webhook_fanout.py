"""The event log is the webhook outbox: the write path writes events only, and
the delivery workers make each endpoint's messages from them (`outbox.fan_out`)
after a cursor, one worker at a time, each event once, nothing lost when a
worker dies mid-step; retention never prunes an event the fan-out has not
reached."""

import json
import threading
import traceback
from collections import Counter
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from webhook_helpers import ALL_EVENTS, ReceiverProcess, WorkerProcess, eventually, make_endpoint

from detections.alerts import config
from detections.core import writes
from detections.core.writes import NewDetection
from detections.models import (
    Camera,
    Event,
    EventKind,
    FollowerCursor,
    WebhookEndpoint,
    WebhookEvent,
    WebhookMessage,
    feed_head,
)
from detections.operations import retention
from detections.webhooks import outbox, queue


def endpoint(*events, cameras=(), active=True) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        url="https://gate.example/hook",
        events=list(events or ALL_EVENTS),
        cameras=list(cameras),
        active=active,
        secret_encrypted="x",
    )


def store(n: int, *, camera="gate-1", prefix="t", group=250) -> list[int]:
    """`n` detections (no image), written in groups as the group commit writes
    them; their ids."""
    where = Camera.objects.get_or_create(name=camera)[0]
    moment = timezone.now()
    ids = []
    for start in range(0, n, group):
        outcomes = writes.detections_create(
            [
                NewDetection(camera=where, tracking_id=f"{prefix}-{i}", vehicle_type="car", detected_at=moment)
                for i in range(start, min(n, start + group))
            ]
        )
        ids += [outcome.detection.pk for outcome in outcomes]
    return ids


def fanned_out():
    while outbox.fan_out():
        pass


def message_pairs() -> Counter:
    """(endpoint, seq) -> how many messages it has."""
    return Counter(WebhookMessage.objects.values_list("endpoint_id", "seq"))


def created_seqs() -> list[int]:
    return list(Event.objects.filter(kind=EventKind.NEW_DETECTION).order_by("seq").values_list("seq", flat=True))


def cursor() -> int:
    """Where the fan-out's cursor is (0 before its first step made it)."""
    return outbox.FANOUT.position() or 0


# --- What a step makes ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_step_makes_one_message_per_event_and_endpoint_that_takes_it_and_none_for_the_others(settings):
    settings.PUBLIC_BASE_URL = "https://monitor.example"
    created = endpoint(WebhookEvent.DETECTION_CREATED)
    deletions = endpoint(WebhookEvent.DETECTION_DELETED)
    yard_only = endpoint(WebhookEvent.DETECTION_CREATED, cameras=["yard"])
    off = endpoint(active=False)
    (gate_id,) = store(1, camera="gate-1", prefix="gate")
    (yard_id,) = store(1, camera="yard", prefix="yard")
    writes.detection_delete(detection=writes.Detection.objects.get(pk=gate_id))

    assert not WebhookMessage.objects.exists()  # the write path wrote events only
    assert outbox.fan_out() is False  # everything in one step

    gate_event, yard_event, deletion = Event.objects.order_by("seq")
    assert message_pairs() == {
        (created.pk, gate_event.seq): 1,
        (created.pk, yard_event.seq): 1,
        (yard_only.pk, yard_event.seq): 1,
        (deletions.pk, deletion.seq): 1,
    }
    assert not WebhookMessage.objects.filter(endpoint=off).exists()
    message = WebhookMessage.objects.get(endpoint=created, seq=gate_event.seq)
    body = json.loads(message.body)
    assert body["type"] == "detection.created" and body["seq"] == gate_event.seq
    assert body["data"]["id"] == gate_id and "type" not in body["data"] and "seq" not in body["data"]
    assert message.body == outbox.message_body(gate_event, WebhookEvent.DETECTION_CREATED)
    # Due at once, and timed from the event, not from the step.
    assert message.created_at == message.next_attempt_at == gate_event.created_at
    assert message.status == "pending" and message.message_id.startswith("msg_")
    # One event, two endpoints: the same body, two webhook-ids.
    same_event = WebhookMessage.objects.filter(seq=yard_event.seq)
    assert len({m.body for m in same_event}) == 1 and len({m.message_id for m in same_event}) == 2
    assert cursor() == feed_head()


@pytest.mark.django_db
def test_an_endpoint_made_after_an_event_never_gets_it_even_before_the_fan_out_reached_it():
    store(2, prefix="before")
    assert cursor() == 0  # nothing fanned out yet
    late = endpoint()
    store(1, prefix="after")

    fanned_out()

    assert late.after_seq == 2
    assert set(WebhookMessage.objects.values_list("seq", flat=True)) == {3}


@pytest.mark.django_db
def test_a_step_reads_a_bounded_page_and_says_more_is_waiting():
    hook = endpoint()
    store(12)

    assert outbox.fan_out(page=5) is True
    assert cursor() == 5 and message_pairs() == {(hook.pk, seq): 1 for seq in range(1, 6)}
    assert outbox.fan_out(page=5) is True
    assert outbox.fan_out(page=5) is False
    assert message_pairs() == {(hook.pk, seq): 1 for seq in range(1, 13)}


@pytest.mark.django_db
def test_without_endpoints_a_step_moves_the_cursor_to_the_head_and_writes_no_message():
    store(700)
    assert outbox.fan_out() is False
    assert cursor() == 700 and not WebhookMessage.objects.exists()


@pytest.mark.django_db
def test_an_event_type_no_release_knows_in_an_endpoint_stops_nothing():
    odd = endpoint("vehicle.parked", WebhookEvent.DETECTION_CREATED)  # a row edited by hand
    store(2)
    fanned_out()
    assert message_pairs() == {(odd.pk, 1): 1, (odd.pk, 2): 1}


@pytest.mark.django_db
def test_the_write_path_makes_the_same_queries_with_three_endpoints_as_without(django_assert_num_queries):
    where = Camera.objects.create(name="gate-1")

    def group(prefix: str, n: int = 8) -> list[NewDetection]:
        moment = timezone.now()
        return [
            NewDetection(camera=where, tracking_id=f"{prefix}-{i}", vehicle_type="car", detected_at=moment)
            for i in range(n)
        ]

    # The warm-ups: the camera's last seen (written at most every 30 s) and the
    # configuration, read again once the endpoints exist.
    writes.detections_create(group("warm-up", 1))
    without = group("none")
    with django_assert_num_queries(9) as before:
        writes.detections_create(without)
    for _ in range(3):
        endpoint()
    config.forget()
    writes.detections_create(group("warm-up-again", 1))
    three = group("three")
    with django_assert_num_queries(9) as after:
        writes.detections_create(three)

    assert not any(
        "detections_webhook" in query["sql"] for query in [*before.captured_queries, *after.captured_queries]
    )
    fanned_out()
    assert WebhookMessage.objects.count() == 3 * (8 + 1)


@pytest.mark.django_db
def test_a_workers_step_claims_the_new_messages_it_has_slots_for_and_leaves_the_rest_due():
    wants_three, _ = make_endpoint("https://gate.example/three")
    wants_one, _ = make_endpoint("https://gate.example/one")
    store(5)
    events = {event.seq: event for event in Event.objects.all()}

    claims, filled, more = queue.fan_out_and_claim({wants_three.pk: 3}, 1)

    assert more is False and filled == {wants_three.pk, wants_one.pk}
    # The oldest of each endpoint's new messages, as a claim would have found them.
    assert sorted((c.endpoint_id, json.loads(c.body)["seq"]) for c in claims) == sorted(
        [(wants_three.pk, 1), (wants_three.pk, 2), (wants_three.pk, 3), (wants_one.pk, 1)]
    )
    for claim in claims:
        stored = WebhookMessage.objects.get(pk=claim.message_pk)
        assert (stored.message_id, stored.body, stored.endpoint_id) == (claim.message_id, claim.body, claim.endpoint_id)
        assert stored.claimed_until == stored.next_attempt_at == claim.claimed_until
        assert claim.created_at == stored.created_at == events[stored.seq].created_at
        assert claim.url == WebhookEndpoint.objects.get(pk=claim.endpoint_id).url and claim.secret.startswith("whsec_")
    left = list(WebhookMessage.objects.filter(claimed_until=None))
    assert sorted((m.endpoint_id, m.seq) for m in left) == sorted(
        [(wants_three.pk, 4), (wants_three.pk, 5), *((wants_one.pk, seq) for seq in range(2, 6))]
    )
    assert all(m.next_attempt_at == events[m.seq].created_at for m in left)  # due at once

    now = timezone.now()
    recorded = queue.record_all([(c, queue.Outcome(attempted_at=now, latency_ms=1.0, status_code=200)) for c in claims])
    assert [r.status for r in recorded] == ["delivered"] * 4
    # The next step claims what was left, oldest first; nothing new to fan out.
    claims, _, more = queue.fan_out_and_claim({}, 10)
    assert more is False and sorted(c.message_pk for c in claims) == sorted(m.pk for m in left)


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_step_finds_another_one_fanning_out_leaves_the_events_to_it():
    hook, _ = make_endpoint("https://gate.example/hook")
    store(3)
    FollowerCursor.objects.update_or_create(name="webhooks", defaults={"position": 0})
    locked, release = threading.Event(), threading.Event()

    def another_worker():
        try:
            with transaction.atomic():
                list(FollowerCursor.objects.select_for_update().filter(name="webhooks"))
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=another_worker)
    thread.start()
    try:
        assert locked.wait(timeout=30)
        assert queue.fan_out_and_claim({}, 8) == ([], set(), False)  # no wait for it, nothing made
        assert not WebhookMessage.objects.exists()
    finally:
        release.set()
        thread.join(timeout=30)

    claims, _, _ = queue.fan_out_and_claim({}, 8)
    assert sorted(json.loads(c.body)["seq"] for c in claims) == [1, 2, 3] and message_pairs() == {
        (hook.pk, seq): 1 for seq in range(1, 4)
    }


# --- Nothing lost, nothing twice --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_step_that_fails_before_its_commit_leaves_nothing_and_the_next_makes_every_message(monkeypatch):
    hooks = [endpoint(), endpoint()]
    store(30)
    insert = outbox._insert
    inserted = []

    def insert_then_die(rows, **options):
        insert(rows, **options)
        inserted.append(WebhookMessage.objects.count())  # seen inside the step's transaction
        raise DatabaseError("the worker's connection is gone")

    monkeypatch.setattr(outbox, "_insert", insert_then_die)
    with pytest.raises(DatabaseError):
        outbox.fan_out()
    assert inserted == [60]
    assert not WebhookMessage.objects.exists() and cursor() == 0
    monkeypatch.undo()

    fanned_out()

    assert message_pairs() == {(hook.pk, seq): 1 for hook in hooks for seq in range(1, 31)}


def held_by_another() -> bool:
    """Whether another transaction holds the fan-out cursor (a worker mid-step)."""
    try:
        with transaction.atomic():
            list(FollowerCursor.objects.select_for_update(nowait=True).filter(name="webhooks"))
    except DatabaseError:
        return True
    return False


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_step_loses_nothing_and_the_next_worker_makes_each_message_once(tmp_path):
    if connection.vendor != "mysql":
        pytest.skip("needs the database's row locks (MariaDB)")
    with ReceiverProcess(tmp_path, "200") as receiver:
        hooks = [make_endpoint(receiver.url)[0] for _ in range(4)]
        store(4000)
        FollowerCursor.objects.update_or_create(name="webhooks", defaults={"position": 0})
        expected = {(hook.pk, seq): 1 for hook in hooks for seq in created_seqs()}

        with WorkerProcess() as first:
            eventually(held_by_another, what="the worker in the middle of a step")
            first.kill()
        reached = cursor()
        # All of every step that committed, none of the one it died in.
        assert reached < 4000
        assert message_pairs() == {pair: 1 for pair in expected if pair[1] <= reached}

        with WorkerProcess():
            eventually(lambda: WebhookMessage.objects.count() >= len(expected), what="every message made")
        assert message_pairs() == expected


@pytest.mark.django_db(transaction=True)
def test_two_workers_fanning_out_at_once_while_ingest_runs_make_each_message_exactly_once():
    if connection.vendor != "mysql":
        pytest.skip("needs concurrent transactions (MariaDB)")
    hooks = [endpoint(), endpoint(WebhookEvent.DETECTION_CREATED), endpoint(cameras=["gate-2"])]
    store(300, prefix="backlog")
    writing = threading.Event()
    writing.set()
    errors = []
    steps = Counter()

    def ingest():
        try:
            for n in range(20):
                store(25, camera=f"gate-{n % 2 + 1}", prefix=f"live-{n}", group=25)
        except Exception:
            errors.append(traceback.format_exc())
        finally:
            writing.clear()
            connection.close()

    def worker(name):
        try:
            while outbox.fan_out(page=20) or writing.is_set():
                steps[name] += 1
        except Exception:
            errors.append(traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest), *(threading.Thread(target=worker, args=(n,)) for n in "ab")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, "\n".join(errors)
    assert not any(thread.is_alive() for thread in threads)
    fanned_out()  # what the last commits left after the workers' last look

    assert steps["a"] > 1 and steps["b"] > 1
    events = list(Event.objects.values_list("seq", "camera"))
    assert len(events) == 800
    expected = {(hooks[0].pk, seq): 1 for seq, _ in events}
    expected |= {(hooks[1].pk, seq): 1 for seq, _ in events}
    expected |= {(hooks[2].pk, seq): 1 for seq, camera in events if camera == "gate-2"}
    assert message_pairs() == expected
    # The steps ran one at a time, in seq order: each endpoint's messages are in seq order.
    for hook in hooks:
        seqs = list(WebhookMessage.objects.filter(endpoint=hook).order_by("id").values_list("seq", flat=True))
        assert seqs == sorted(seqs)


@pytest.mark.django_db(transaction=True)
def test_events_committed_while_two_workers_run_reach_the_receiver_once_each(tmp_path):
    with ReceiverProcess(tmp_path, "200") as receiver:
        hook, _ = make_endpoint(receiver.url, events=[WebhookEvent.DETECTION_CREATED])
        with WorkerProcess(), WorkerProcess():
            for n in range(10):
                store(10, prefix=f"group-{n}", group=10)
            requests = receiver.wait_for_requests(100)

    seqs = [json.loads(request["body"])["seq"] for request in requests]
    assert sorted(seqs) == created_seqs() and len(set(seqs)) == 100
    assert {r["headers"]["webhook-id"] for r in requests} == set(
        WebhookMessage.objects.filter(endpoint=hook).values_list("message_id", flat=True)
    )


# --- Retention ---------------------------------------------------------------------------------


def age_every_event(days: int):
    Event.objects.update(created_at=timezone.now() - timedelta(days=days))


@pytest.mark.django_db
def test_retention_keeps_every_event_the_fan_out_has_not_reached():
    hook = endpoint()
    store(10)
    age_every_event(40)
    outbox.fan_out(page=4)

    assert retention.prune_events(timezone.now() - timedelta(days=30)) == 4
    assert list(Event.objects.values_list("seq", flat=True)) == list(range(5, 11))

    fanned_out()
    assert message_pairs() == {(hook.pk, seq): 1 for seq in range(1, 11)}
    assert retention.prune_events(timezone.now() - timedelta(days=30)) == 5  # all but the newest


@pytest.mark.django_db
def test_without_an_active_endpoint_retention_is_not_held_back_by_a_cursor_no_worker_moves():
    endpoint(active=False)
    store(10)
    age_every_event(40)
    assert cursor() == 0

    assert retention.prune_events(timezone.now() - timedelta(days=30)) == 9
    assert list(Event.objects.values_list("seq", flat=True)) == [10]


@pytest.mark.django_db
def test_a_preview_of_the_purge_counts_only_the_events_retention_may_prune():
    endpoint()
    store(10)
    age_every_event(40)
    outbox.fan_out(page=6)

    assert retention.preview_purge(timezone.now() - timedelta(days=30)).events_pruned == 6
