"""Followers of the event log: the processes that turn events into something
of their own (the webhook fan-out makes messages; the engines to come make
visits and journeys, or publish to a broker).

Each follower keeps a cursor row (FollowerCursor, by name): every event up to
its `position` is done. A step is one transaction:

    lock the cursor row -> read the committed head -> the follower's work on
    the events after the cursor -> move the cursor to where the work reached
    -> commit

so what a follower writes commits with the cursor that says it is done, or
neither does. Seqs follow commit order (every writer locks the feed row last,
until commit), so the events up to the committed head are all committed and
no later commit brings one below it: a cursor never steps over an event that
is still to come. The lock makes one process at a time work a follower, on
whatever host: a process that finds the row locked leaves the step to the one
holding it (`wait=False`), and a process that dies mid-step holds nothing
(its transaction rolls back, and the lock goes with its connection), so the
next step does the same work again.

Followers never slow the write path: they read the log after the fact, each
in its own process. How far behind each one is, in events and in seconds, is
on /metrics (`lag`); retention keeps every event a follower still needs
(`lowest_reached`).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from detections.core.events import PUBLISH_GROUP
from detections.models import Event, FollowerCursor, feed_head

logger = logging.getLogger(__name__)

# Every follower made, by name: retention and the metrics ask each of them.
FOLLOWERS: dict[str, "Follower"] = {}


@dataclass(frozen=True)
class Span:
    """What a step may work on: the events after `after`, up to `head`."""

    after: int  # the cursor: every event up to here is done
    head: int  # the committed head of the log when the step began

    def events(self, upper: int):
        """The events in (after, upper], in seq order."""
        return Event.objects.filter(seq__gt=self.after, seq__lte=upper).order_by("seq")


@dataclass(frozen=True)
class Progress:
    stepped: bool  # False: another process holds the cursor, and does the work
    more: bool  # committed events wait past where this step reached


class Follower:
    """A cursor on the event log, and how far its follower really is.

    `starts_at_head`: a cursor made afresh (its row missing) starts at the
    head of the log, skipping the history; otherwise at its start.
    `needs_nothing_up_to(position, head)` says up to where the events need
    nothing of the follower (no webhook endpoint takes them, no site is
    active): retention prunes them and they count for no lag even before a
    step has passed them. A step's work skips them itself, with what it reads
    anyway. It must be cheap: it is asked at every scrape.
    `on_start()` runs in the transaction that makes the cursor: a follower
    that starts at the head takes the history before it from the tables
    there (the log may have been pruned long ago); its steps must then take
    calmly an event whose change it found already made.
    """

    def __init__(
        self,
        name: str,
        *,
        starts_at_head: bool = False,
        needs_nothing_up_to: Callable[[int, int], int] | None = None,
        on_start: Callable[[], None] | None = None,
    ):
        if name in FOLLOWERS:
            raise ValueError(f"a follower named {name!r} exists already")
        self.name = name
        self.starts_at_head = starts_at_head
        self._needs_nothing_up_to = needs_nothing_up_to
        self._on_start = on_start
        FOLLOWERS[name] = self

    def __repr__(self):
        return f"Follower({self.name!r})"

    # --- the step ------------------------------------------------------------------------

    def step(self, work: Callable[[Span], int], *, wait: bool = False) -> Progress:
        """One step, in one transaction (the caller's, when it has one):
        `work(span)` handles events after `span.after` and answers the seq it
        handled them up to (at most `span.head`); the cursor moves there.
        `wait` waits for a step another process is taking; otherwise such a
        step is left to it and nothing is done."""
        inside = connection.in_atomic_block
        # savepoint=False: inside a caller's transaction the step is part of it.
        with transaction.atomic(savepoint=False):
            position = self._lock(wait)
            if position is not None:
                return self._step(position, work)
            if not wait and FollowerCursor.objects.filter(name=self.name).exists():
                return Progress(stepped=False, more=False)  # another process's step
            if inside and not wait:
                # Its first step (or a flushed test database), inside a caller's
                # transaction: the cursor is made after it. Two processes making
                # it inside transactions that hold other locks could deadlock.
                transaction.on_commit(self._make_cursor)
                return Progress(stepped=False, more=True)
            if inside:
                self._make_cursor()
                return self.step(work, wait=wait)
        self._make_cursor()  # in a transaction of its own
        return self.step(work, wait=wait)

    def hold(self) -> int:
        """Inside the caller's transaction: wait for the cursor and lock it until
        the transaction ends, for work that must not interleave with a step
        (a follower swapping in what it derived aside); its position, unmoved."""
        assert connection.in_atomic_block, "a cursor is held only inside a transaction"
        position = self._lock(wait=True)
        if position is None:
            self._make_cursor()
            position = self._lock(wait=True)
        return position

    def _make_cursor(self):
        with transaction.atomic():
            start = feed_head() if self.starts_at_head else 0
            _, made = FollowerCursor.objects.get_or_create(name=self.name, defaults={"position": start})
            if made and self._on_start is not None:
                self._on_start()

    def _lock(self, wait: bool) -> int | None:
        """The cursor, locked until the transaction ends; None when it is
        missing, or (without `wait`) locked by another process."""
        queryset = FollowerCursor.objects.select_for_update(skip_locked=not wait).filter(name=self.name)
        return queryset.values_list("position", flat=True).first()

    def _step(self, position: int, work: Callable[[Span], int]) -> Progress:
        head = feed_head()
        reached = position
        if head > position:
            reached = work(Span(after=position, head=head))
            if not position <= reached <= head:
                raise ValueError(f"{self.name}: a step reached seq {reached}, outside {position}..{head}")
        if reached != position:
            FollowerCursor.objects.filter(name=self.name).update(position=reached, updated_at=timezone.now())
        return Progress(stepped=True, more=reached < head)

    def _really_at(self, position: int, head: int) -> int:
        if self._needs_nothing_up_to is None:
            return position
        return max(position, min(head, self._needs_nothing_up_to(position, head)))

    # --- where it is ---------------------------------------------------------------------

    def position(self) -> int | None:
        """The cursor as stored (None before the first step made it)."""
        return FollowerCursor.objects.filter(name=self.name).values_list("position", flat=True).first()

    def reached(self, head: int | None = None) -> int:
        """The seq up to which every event is done or needs nothing: what
        retention may prune, and where the lag starts."""
        head = feed_head() if head is None else head
        position = self.position()
        if position is None:
            position = head if self.starts_at_head else 0
        return self._really_at(position, head)


class StepSize:
    """How many events a follower's next step takes.

    A step runs its work between statements of one transaction, and MariaDB
    closes a transaction left idle longer than DATABASE_IDLE_TRANSACTION_SECONDS
    (settings.py): a step whose work takes longer (a unit flushing days of
    stored reads into an engine that must derive them again) fails, and the
    same step again would fail forever. So a failed step is taken again with
    half the events, down to one; after `GROW_AFTER` steps in a row commit,
    the size doubles back towards `most` (so a size too large again wastes at
    most one step in that many). A database that was away (a restart) costs a
    few smaller steps, no more.
    """

    GROW_AFTER = 10

    def __init__(self, most: int):
        self.most = most
        self.now = most
        self.committed = 0  # steps in a row since the last failure or growth

    def failed(self):
        self.now = max(1, self.now // 2)
        self.committed = 0

    def succeeded(self):
        self.committed += 1
        if self.committed >= self.GROW_AFTER and self.now < self.most:
            self.now = min(self.most, self.now * 2)
            self.committed = 0


def lowest_reached() -> int:
    """The seq up to which every follower is done: events past it are kept."""
    head = feed_head()
    return min((follower.reached(head) for follower in FOLLOWERS.values()), default=head)


@dataclass(frozen=True)
class Lag:
    events: int  # committed events past where the follower is
    seconds: float  # the age of the oldest of them (0: none waits)


def lag(follower: Follower) -> Lag:
    head = feed_head()
    reached = follower.reached(head)
    if reached >= head:
        return Lag(0, 0.0)
    oldest = Event.objects.filter(seq__gt=reached).order_by("seq").values_list("created_at", flat=True).first()
    seconds = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
    return Lag(head - reached, seconds)


# --- waking up -------------------------------------------------------------------------------

# How often a listener joins the group again, and waits after the channel layer failed.
REJOIN_SECONDS = 30.0
RETRY_SECONDS = 1.0


async def wake_on_commits(wake: asyncio.Event, *, channel_prefix: str):
    """Set `wake` whenever a change commits events, not at the next poll:
    every commit that writes events publishes them to PUBLISH_GROUP, so a
    follower listens there (when the channel layer reaches across processes,
    as Redis does; otherwise its polling alone finds the events). Runs until
    cancelled; a channel layer that fails leaves the follower to its polling
    until the layer is back."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    channel = None
    joined_at = float("-inf")
    failing = False
    while True:
        try:
            if channel is None:
                channel = await layer.new_channel(channel_prefix)
            if time.monotonic() - joined_at > REJOIN_SECONDS:
                # Redis forgets group members after a while, and all of them when
                # it restarts empty: join again now and then.
                await layer.group_add(PUBLISH_GROUP, channel)
                joined_at = time.monotonic()
            failing = False
            await asyncio.wait_for(layer.receive(channel), REJOIN_SECONDS)
            wake.set()
        except TimeoutError:
            continue
        except Exception as problem:  # Redis down: polling carries on meanwhile
            if not failing:
                logger.info("polling only until the channel layer is back (%s: %s)", type(problem).__name__, problem)
            failing = True
            joined_at = float("-inf")
            await asyncio.sleep(RETRY_SECONDS)
