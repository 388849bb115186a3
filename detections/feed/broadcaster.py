"""One feed subscription per server process, shared by all of its sockets.

The channel layer carries each event once to each process (one group member
per process, not per socket); here it is handed to every local socket's inbox.
A socket therefore costs a queue put per event, not a channel-layer receive, a
deserialisation and a dispatch round of its own: with a thousand sockets that
difference is most of the fan-out's cost (benchmarks/README.md).

The event text is serialised once, by the publisher; every socket sends the
same string.
"""

import asyncio
import logging
import time

from channels.layers import get_channel_layer

from detections.core.events import PUBLISH_GROUP

logger = logging.getLogger(__name__)

# The process re-joins the feed group this often. Redis forgets group members
# after a day (channels-redis' group_expiry) and all of them when it restarts
# empty; re-joining bounds how long such a loss can last. Events published in
# between are not lost: the next one reveals the gap and sockets read it from
# the log.
REJOIN_SECONDS = 30
# After a channel-layer error (Redis down), wait this long before receiving again.
RETRY_SECONDS = 1
# Back-pressure: while most of this process's sockets have more than this many
# live events waiting, the loop is not keeping up with what it accepts, and the
# group commit holds the next group back, for at most BACKLOG_WAIT_SECONDS (a
# crowd of clients that stopped reading must not stop ingest).
BACKLOG_EVENTS = 20
BACKLOG_WAIT_SECONDS = 0.25
BACKLOG_POLL_SECONDS = 0.005
# Offered to every socket instead of an event when events may have been missed
# (this process was cut off from the channel layer, or a publisher could not
# reach it): the socket reads what it lacks from the log at once, rather than
# at the next event, which may be long in coming.
CATCH_UP = {"catch_up": True}


class FeedBroadcaster:
    def __init__(self):
        self.sockets: set = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribed: asyncio.Task | None = None

    async def join(self, socket):
        """Offer every event from now on to `socket.offer(message)`."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            # The first socket on this loop (a server has one; in-process tests make many).
            self.loop, self.sockets, self.subscribed = loop, set(), None
        if self.subscribed is None or (self.subscribed.done() and self.subscribed.exception()):
            self.subscribed = loop.create_task(self._subscribe())
        # Shielded: a socket that goes away while waiting must not cancel it for the others.
        await asyncio.shield(self.subscribed)
        self.sockets.add(socket)
        # Join the group again (one cheap call): if Redis restarted empty since,
        # this socket's first live event must not wait for the next re-join.
        await self._join_group()

    def leave(self, socket):
        self.sockets.discard(socket)

    def behind(self) -> bool:
        """Most local sockets have live events waiting to be sent."""
        lagging = sum(1 for socket in self.sockets if socket.backlog() > BACKLOG_EVENTS)
        return lagging * 2 > len(self.sockets)

    async def wait_until_sockets_keep_up(self):
        """Return once the sockets are not behind, or after BACKLOG_WAIT_SECONDS."""
        deadline = time.monotonic() + BACKLOG_WAIT_SECONDS
        while self.sockets and self.behind() and time.monotonic() < deadline:
            await asyncio.sleep(BACKLOG_POLL_SECONDS)

    async def _subscribe(self):
        self.layer = get_channel_layer()
        # The default prefix: see detections/operations/health.py's channel check.
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(PUBLISH_GROUP, self.channel)
        # Kept here: the event loop holds tasks only weakly.
        self.receiving = asyncio.create_task(self._receive())
        self.rejoining = asyncio.create_task(self._rejoin())

    async def _receive(self):
        joined = True
        while True:
            try:
                if not joined:
                    # A Redis that restarted empty has forgotten the group: join again
                    # before waiting, or nothing would ever arrive.
                    await self.layer.group_add(PUBLISH_GROUP, self.channel)
                    joined = True
                    self._offer_all(CATCH_UP)
                message = await self.layer.receive(self.channel)
            except Exception as exc:  # Redis down or restarting: keep trying
                logger.warning("feed receive failed (%s: %s); retrying", type(exc).__name__, exc)
                joined = False
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message.get("catch_up"):
                self._offer_all(CATCH_UP)
            for event in message["events"]:
                # The ASGI message every socket sends, built once for all of them.
                event["send"] = {"type": "websocket.send", "text": event["text"]}
                self._offer_all(event)

    def _offer_all(self, message: dict):
        for socket in list(self.sockets):
            socket.offer(message)

    async def _rejoin(self):
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            await self._join_group()

    async def _join_group(self):
        try:
            await self.layer.group_add(PUBLISH_GROUP, self.channel)
        except Exception as exc:  # Redis down: the receive loop joins again when it is back
            logger.warning("could not re-join the feed group (%s: %s)", type(exc).__name__, exc)


broadcaster = FeedBroadcaster()
