"""Followers of the event log (`detections.core.followers`): a cursor per
follower, moved in the same transaction as what the follower wrote, one
process at a time; retention keeps what any follower has not reached, and
/metrics shows each one's lag."""

import threading
import time

import pytest
from conftest import store_detection
from django.db import DatabaseError, connection, transaction
from webhook_helpers import eventually

from detections.core import followers
from detections.models import Camera, Event, FollowerCursor, feed_head
from detections.operations import retention


@pytest.fixture
def make_follower():
    """Followers made by a test, unregistered after it."""
    made = []

    def make(name, **options):
        made.append(name)
        return followers.Follower(name, **options)

    yield make
    for name in made:
        followers.FOLLOWERS.pop(name, None)


def stored(n: int) -> list[int]:
    return [store_detection(f"trk-{i}").pk for i in range(n)]


def noting(seen: list[int], *, page: int = 1000):
    """A follower's work that notes the seqs it handled, `page` at most a step."""

    def work(span: followers.Span) -> int:
        upper = min(span.head, span.after + page)
        seen.extend(span.events(upper).values_list("seq", flat=True))
        return upper

    return work


@pytest.mark.django_db(transaction=True)
def test_a_step_hands_the_events_after_the_cursor_and_moves_it_to_where_the_work_reached(make_follower):
    follower = make_follower("test-notes")
    stored(5)
    seen = []
    assert follower.step(noting(seen, page=3)) == followers.Progress(stepped=True, more=True)
    assert seen == [1, 2, 3] and follower.position() == 3
    assert follower.step(noting(seen, page=3)) == followers.Progress(stepped=True, more=False)
    assert seen == [1, 2, 3, 4, 5] and follower.position() == 5
    # Nothing new: the work is not called at all.
    assert follower.step(lambda span: pytest.fail("no events to work on")).more is False


@pytest.mark.django_db(transaction=True)
def test_a_new_cursor_starts_at_the_start_of_the_log_or_at_its_head_as_its_follower_says(make_follower):
    stored(3)
    from_start, from_head = make_follower("test-start"), make_follower("test-head", starts_at_head=True)
    assert from_start.position() is None and from_start.reached() == 0 and from_head.reached() == 3
    seen = []
    from_start.step(noting(seen))
    from_head.step(lambda span: pytest.fail("the history is skipped"))
    assert seen == [1, 2, 3] and from_head.position() == 3


@pytest.mark.django_db(transaction=True)
def test_a_step_whose_work_fails_leaves_neither_its_output_nor_a_moved_cursor(make_follower):
    follower = make_follower("test-fails")
    stored(2)
    follower.step(noting([], page=1))

    def write_then_fail(span):
        Camera.objects.create(name="made-by-the-step")
        raise DatabaseError("the connection is gone")

    with pytest.raises(DatabaseError):
        follower.step(write_then_fail)
    assert follower.position() == 1 and not Camera.objects.filter(name="made-by-the-step").exists()


@pytest.mark.django_db(transaction=True)
def test_a_step_that_claims_to_reach_past_the_head_is_refused(make_follower):
    follower = make_follower("test-overreach")
    stored(1)
    follower.step(noting([], page=0))  # makes the cursor, at 0
    with pytest.raises(ValueError, match="outside 0..1"):
        follower.step(lambda span: span.head + 1)
    assert follower.position() == 0


@pytest.mark.django_db(transaction=True)
def test_a_process_that_finds_the_cursor_held_leaves_the_step_to_the_holder_or_waits_when_asked(make_follower):
    if connection.vendor != "mysql":
        pytest.fail("needs the database's row locks: run on MariaDB")
    follower = make_follower("test-held")
    stored(2)
    follower.step(noting([], page=0))  # makes the cursor, at 0
    holding, release = threading.Event(), threading.Event()

    def another_process():
        try:
            with connection.cursor() as cursor:
                # Idle in its transaction on purpose: the server must not end it.
                cursor.execute("SET SESSION idle_transaction_timeout = 0")
            with transaction.atomic():
                list(FollowerCursor.objects.select_for_update().filter(name="test-held"))
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=another_process)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        assert follower.step(lambda span: pytest.fail("the holder does it")) == followers.Progress(False, False)
        waited = []

        waiter = threading.Thread(target=lambda: (follower.step(noting(waited), wait=True), connection.close()))
        waiter.start()
        eventually(waiting_for_a_lock, what="the second step waiting for the cursor's lock")
        assert waited == []
    finally:
        release.set()
        holder.join(timeout=30)
    waiter.join(timeout=30)
    assert waited == [1, 2] and follower.position() == 2


def waiting_for_a_lock() -> bool:
    """Whether another connection's locking read of a cursor is under way (it
    waits in the optimizer's row lookup, which INNODB_TRX does not list)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID != CONNECTION_ID() "
            "AND INFO LIKE 'SELECT%%detections_followercursor%%FOR UPDATE'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_retention_keeps_every_event_the_least_advanced_follower_needs(make_follower):
    ahead, behind = make_follower("test-ahead"), make_follower("test-behind")
    stored(6)
    ahead.step(noting([]))
    behind.step(noting([], page=2))
    assert followers.lowest_reached() == 2
    # Everything is older than the cutoff; only what `behind` has not reached stays.
    retention.prune_events(cutoff=Event.objects.latest("created_at").created_at.replace(year=2100))
    assert list(Event.objects.values_list("seq", flat=True)) == [3, 4, 5, 6]


@pytest.mark.django_db
def test_a_follower_that_needs_nothing_of_the_events_holds_nothing_back_and_lags_by_nothing(make_follower):
    idle = make_follower("test-idle", needs_nothing_up_to=lambda position, head: head)
    stored(4)
    assert idle.position() is None and idle.reached() == feed_head() == 4
    assert followers.lag(idle) == followers.Lag(0, 0.0)
    busy = make_follower("test-busy")
    lag = followers.lag(busy)
    assert lag.events == 4 and lag.seconds >= 0


@pytest.mark.django_db(transaction=True)
def test_an_engine_step_that_outlasts_its_transaction_is_taken_again_with_fewer_events(make_follower, monkeypatch):
    """A step's work runs between statements of one transaction, which MariaDB
    closes when idle too long (DATABASE_IDLE_TRANSACTION_SECONDS): the journey
    engine's process takes the same events again, fewer at a time, until they
    fit, and none is lost or taken twice."""
    if connection.vendor != "mysql":
        pytest.fail("needs MariaDB's idle_transaction_timeout: run on MariaDB")
    from django.db.backends.signals import connection_created

    from detections.journeys import worker

    def one_second_idle_limit(sender, connection, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION idle_transaction_timeout = 1")

    connection_created.connect(one_second_idle_limit)
    try:
        connection.close()  # the next statement connects, with the short limit
        follower = make_follower("test-slow-steps")
        expected = [feed_head() + i for i in range(1, 7)]
        stored(6)
        handled = []

        def slow_step(page, *, wait=False):
            def work(span):
                upper = min(span.head, span.after + page)
                seqs = list(span.events(upper).values_list("seq", flat=True))
                time.sleep(0.3 * len(seqs))  # the transaction idle meanwhile: 1 s at most
                handled.append(seqs)
                return upper

            return follower.step(work, wait=wait).more

        monkeypatch.setattr(worker.engine, "step", slow_step)
        runner = worker.Runner(poll_seconds=1, page=4)
        for _ in range(10):
            if follower.position() == expected[-1]:
                break
            runner._round(wait=True)
        # The step of 4 (1.2 s idle) failed, and its events came again two at a time.
        assert runner.page.now == 2
        assert follower.position() == expected[-1]
        committed = [seqs for seqs in handled if len(seqs) <= 2]
        assert [seq for seqs in committed for seq in seqs] == expected
    finally:
        connection_created.disconnect(one_second_idle_limit)
        connection.close()
