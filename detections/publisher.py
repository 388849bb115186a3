"""Hand events to the channel layer without holding up the request.

Inside a server process, the request thread only queues the message (after
commit) and returns; one task on the server's event loop sends the queued
messages to the channel layer in order. A slow or hanging Redis, or a large
audience, therefore costs the request nothing. Outside a server (management
commands, the shell, in-process tests) there is no such loop and the message
is sent at once.

Whatever cannot be sent is logged and counted, never raised: the event is in
the database, and clients fill the gap from there.
"""

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from . import metrics

logger = logging.getLogger(__name__)

# Messages waiting for the channel layer, per process. Past this (Redis down for
# a long while under load) new messages are dropped and counted.
QUEUE_LIMIT = 10_000


class Publisher:
    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue | None = None
        self.failed = 0

    def attach(self, loop: asyncio.AbstractEventLoop):
        """Send from `loop` from now on (the server's loop; called by PublisherMiddleware)."""
        if self.loop is loop:
            return
        self.loop = loop
        self.queue = asyncio.Queue(maxsize=QUEUE_LIMIT)
        loop.create_task(self._drain(self.queue))

    def submit(self, group: str, message: dict):
        """Send `message` to `group`: queued when a server loop runs, else at once."""
        loop = self.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._enqueue, group, message)
        else:
            async_to_sync(self._send)(group, message)

    def _enqueue(self, group: str, message: dict):
        try:
            self.queue.put_nowait((group, message))
        except asyncio.QueueFull:
            self._failure(message, "the publish queue is full")

    async def _drain(self, queue: asyncio.Queue):
        while True:
            group, message = await queue.get()
            await self._send(group, message)

    async def _send(self, group: str, message: dict):
        try:
            layer = get_channel_layer()
            await asyncio.wait_for(layer.group_send(group, message), timeout=settings.EVENT_PUBLISH_TIMEOUT)
        except Exception as exc:  # best effort: the event is in the database
            self._failure(message, f"{type(exc).__name__}: {exc}")
        else:
            for event in message["events"]:
                metrics.EVENTS_PUBLISHED.labels(kind=event["kind"]).inc()

    def _failure(self, message: dict, reason: str):
        self.failed += 1
        for event in message["events"]:
            metrics.EVENTS_PUBLISH_FAILED.labels(kind=event["kind"]).inc()
        logger.warning("could not publish %s (%s)", _events_named(message["events"]), reason)


publisher = Publisher()


class PublisherMiddleware:
    """ASGI middleware that lends the server's event loop to the publisher."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        publisher.attach(asyncio.get_running_loop())
        return await self.application(scope, receive, send)


def _events_named(events: list[dict]) -> str:
    """'event 7', or 'events 7-106' for a batch (its seqs are consecutive)."""
    first, last = events[0]["seq"], events[-1]["seq"]
    return f"event {first}" if first == last else f"events {first}-{last}"
