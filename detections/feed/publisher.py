"""Hand events to the channel layer without holding up the request.

Inside a server process, the writing thread only queues the event (after
commit) and returns; one task on the server's event loop sends what is queued
to the channel layer, in order, as one message. A slow or hanging Redis, or a large
audience, therefore costs the request nothing. Outside a server (management
commands, the shell, in-process tests) there is no such loop and the message
is sent at once.

Whatever cannot be sent is logged and counted, never raised: the event is in
the database, and clients fill the gap from there.
"""

import asyncio
import concurrent.futures
import logging
from collections import deque

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from detections.core.events import PUBLISH_GROUP
from detections.operations import metrics

logger = logging.getLogger(__name__)

# The channel-layer message type: {"type": FEED_MESSAGE_TYPE, "events": [...]}.
FEED_MESSAGE_TYPE = "feed.event"
# Events waiting for the channel layer, per process. Past this (Redis down for
# a long while under load) new events are dropped and counted.
QUEUE_LIMIT = 10_000
# Most events in one channel-layer message.
EVENTS_PER_MESSAGE = 500
# After a failed publish, how often to try telling every process to catch up
# from the log, until the channel layer takes it.
CATCH_UP_RETRY_SECONDS = 1.0


class Publisher:
    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: deque[dict] = deque()
        self.wakeup: asyncio.Event | None = None
        self.woken = False
        self.failed = 0  # events not sent, since the process started
        self.catching_up: concurrent.futures.Future | None = None

    def attach(self, loop: asyncio.AbstractEventLoop):
        """Send from `loop` from now on (the server's loop; see vehicle_monitor/asgi.py)."""
        if self.loop is loop:
            return
        self.loop = loop
        self.pending = deque()
        self.wakeup = asyncio.Event()
        self.woken = False
        # Kept here: the event loop holds tasks only weakly.
        self.draining = loop.create_task(self._drain())

    def publish(self, event: dict):
        """Send one event (a `messages.feed_message`) to every socket: queued when a
        server loop runs, else sent at once. Called from any thread."""
        self.publish_all([event])

    def publish_all(self, events: list[dict]):
        """Send events, in order: outside a server (the visit engine, a command)
        in as few channel-layer messages as EVENTS_PER_MESSAGE allows, not one
        round trip each."""
        loop = self.loop
        if loop is None or not loop.is_running():
            for start in range(0, len(events), EVENTS_PER_MESSAGE):
                async_to_sync(self._send)(events[start : start + EVENTS_PER_MESSAGE])
            return
        room = max(0, QUEUE_LIMIT - len(self.pending))
        if len(events) > room:
            self._failure(events[room:], "the publish queue is full")
            events = events[:room]
        if not events:
            return
        self.pending.extend(events)
        # One wake-up for everything queued before the loop gets to it: a group
        # commit of fifty events costs the loop one call, not fifty.
        if not self.woken:
            self.woken = True
            loop.call_soon_threadsafe(self.wakeup.set)

    async def _drain(self):
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            # Cleared before taking the events: one queued after this is woken for again.
            self.woken = False
            while self.pending:
                count = min(len(self.pending), EVENTS_PER_MESSAGE)
                await self._send([self.pending.popleft() for _ in range(count)])

    async def _send(self, events: list[dict]):
        try:
            layer = get_channel_layer()
            message = {"type": FEED_MESSAGE_TYPE, "events": events}
            await asyncio.wait_for(layer.group_send(PUBLISH_GROUP, message), timeout=settings.EVENT_PUBLISH_TIMEOUT)
        except Exception as exc:  # best effort: the events are in the database
            self._failure(events, f"{type(exc).__name__}: {exc}")
        else:
            for event in events:
                metrics.EVENTS_PUBLISHED.labels(kind=event["kind"]).inc()

    def _failure(self, events: list[dict], reason: str):
        self.failed += len(events)
        for event in events:
            metrics.EVENTS_PUBLISH_FAILED.labels(kind=event["kind"]).inc()
        logger.warning("could not publish %s (%s)", _events_named(events), reason)
        if self.loop is not None and self.loop.is_running() and (self.catching_up is None or self.catching_up.done()):
            self.catching_up = asyncio.run_coroutine_threadsafe(self._tell_sockets_to_catch_up(), self.loop)

    async def _tell_sockets_to_catch_up(self):
        """Once the channel layer is back, have every process's sockets read the
        events this one could not publish from the log, without waiting for the
        next event to reveal the gap."""
        message = {"type": FEED_MESSAGE_TYPE, "events": [], "catch_up": True}
        while True:
            await asyncio.sleep(CATCH_UP_RETRY_SECONDS)
            try:
                layer = get_channel_layer()
                await asyncio.wait_for(layer.group_send(PUBLISH_GROUP, message), timeout=settings.EVENT_PUBLISH_TIMEOUT)
            except Exception as exc:
                logger.info("the channel layer is still unavailable (%s: %s)", type(exc).__name__, exc)
            else:
                return


publisher = Publisher()


def _events_named(events: list[dict]) -> str:
    """'event 7', or 'events 7-106' for several."""
    first, last = events[0]["seq"], events[-1]["seq"]
    return f"event {first}" if first == last else f"events {first}-{last}"
