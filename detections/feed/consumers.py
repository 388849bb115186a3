"""The live feed socket (/ws). Protocol: docs/websocket.md.

Each socket gets every event in seq order, exactly once: live events come
from the process's broadcaster (one channel-layer subscription per process,
`broadcaster.py`) through the socket's inbox; anything lost or delivered late (a
Redis outage, two writers publishing out of order, a full inbox) is read back
from the event log before the event that revealed the gap. `?after=N` or a
`resume` message replays from the log, then the feed continues live with no
gap or duplicate.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import deque

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from detections.core.access import may_view, readable_kinds
from detections.feed import messages
from detections.feed.broadcaster import CATCH_UP, broadcaster
from detections.feed.socket_auth import query_param
from detections.models import EventKind, VehicleType
from detections.operations import metrics

logger = logging.getLogger(__name__)

# Close codes: the application's own range (daphne allows only 1000 and
# 3000-4999), numbered after the HTTP statuses they echo.
CLOSE_UNAUTHORIZED = 4401  # no valid session or token
CLOSE_MESSAGE_TOO_BIG = 4413  # a client message over SOCKET_MAX_MESSAGE_BYTES
CLOSE_TOO_MANY_MESSAGES = 4429  # over SOCKET_MAX_MESSAGES_PER_MINUTE
FLOOD_WINDOW_SECONDS = 60
# Live events waiting to be sent to one socket. Every socket queues the same
# message objects, so a long inbox costs pointers, not copies: together they
# hold at most this many distinct events. A client that does not read stops
# taking them past this; a catch-up is queued after the last instead, so once
# it has sent what it had, it reads what it missed from the log, the newest
# events included, whether or not another event comes to reveal the gap.
INBOX_LIMIT = 2000
# The scope key under which the server's own ASGI `send` reaches the consumer
# (vehicle_monitor/asgi.py); without it (another ASGI stack) events take the
# consumer's own send.
SERVER_SEND = "vehicle_monitor.server_send"


class DetectionFeedConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per socket: the process's broadcaster offers events.
    channel_layer_alias = None

    async def connect(self):
        # The user was resolved from the session cookie, ?token= or the
        # Authorization header before we got here (asgi.py).
        if not may_view(self.scope.get("user")):
            # Accept only to say why: a refused handshake carries no reason.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHORIZED, reason="authentication required")
            return
        self.recent_messages: deque[float] = deque()
        self.last_seq = 0  # every event up to here has been delivered or filtered out
        self.cameras: set[str] | None = None
        self.vehicle_types: set[str] | None = None
        # Alerts and journeys only ever reach a user allowed to view them, never
        # an anonymous socket of the public feed.
        self.readable_kinds = await database_sync_to_async(readable_kinds)(self.scope.get("user"))
        self.kinds = self.readable_kinds
        # At most INBOX_LIMIT events and one catch-up (`offer`).
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.overflowed = False
        # Held while events are delivered, so that live delivery and a replay
        # (`resume`) never interleave.
        self.delivering = asyncio.Lock()
        after = _query_int(self.scope, "after")
        if after is None:
            # "From now on": read the head before joining, so that an event published
            # in between shows up as a gap at the next event and is read from the log.
            self.last_seq = await database_sync_to_async(messages.feed_head)()
        # Join before replaying: an event committed during the replay arrives both
        # ways, and seq tells the copies apart.
        await broadcaster.join(self)
        metrics.SOCKETS_CONNECTED.inc()  # before the handshake completes: a client that sees it is counted
        self.counted_in_metrics = True
        await self.accept()
        if after is not None:
            await self.resume(after)
        self.sender = asyncio.create_task(self.send_live_events())

    async def disconnect(self, code):
        broadcaster.leave(self)
        if getattr(self, "sender", None):
            self.sender.cancel()
        if getattr(self, "counted_in_metrics", False):
            metrics.SOCKETS_CONNECTED.dec()

    # --- client -> server ------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.flooding():
            logger.warning(
                "closing a socket that sent over %s messages a minute", settings.SOCKET_MAX_MESSAGES_PER_MINUTE
            )
            return await self.close(code=CLOSE_TOO_MANY_MESSAGES, reason="too many messages")
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.SOCKET_MAX_MESSAGE_BYTES:
            return await self.close(code=CLOSE_MESSAGE_TOO_BIG, reason="message too big")
        if text_data is None:
            return await self.send_error("invalid_message", "send JSON text, not binary frames")
        try:
            message = json.loads(text_data)
        except ValueError:
            return await self.send_error("invalid_message", "the message is not valid JSON")
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "subscribe":
            await self.subscribe(message)
        elif kind == "resume":
            after = message.get("after")
            if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                return await self.send_error("invalid_message", "resume needs 'after': a seq (integer >= 0)")
            await self.resume(after)
        else:
            await self.send_error("unknown_type", "type must be one of: ping, subscribe, resume")

    def flooding(self) -> bool:
        now = time.monotonic()
        self.recent_messages.append(now)
        while self.recent_messages[0] < now - FLOOD_WINDOW_SECONDS:
            self.recent_messages.popleft()
        return len(self.recent_messages) > settings.SOCKET_MAX_MESSAGES_PER_MINUTE

    async def subscribe(self, message: dict):
        cameras = message.get("cameras")
        vehicle_types = message.get("vehicle_types")
        kinds = message.get("types")
        for name, value in (("cameras", cameras), ("vehicle_types", vehicle_types), ("types", kinds)):
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                return await self.send_error("invalid_message", f"{name} must be a list of strings or null")
        if vehicle_types is not None:
            vehicle_types = [v.lower() for v in vehicle_types]
            unknown = sorted(set(vehicle_types) - set(VehicleType.values))
            if unknown:
                return await self.send_error("invalid_message", f"unknown vehicle types: {', '.join(unknown)}")
        if kinds is not None:
            unknown = sorted(set(kinds) - set(EventKind.values))
            if unknown:
                return await self.send_error(
                    "invalid_message", f"unknown types: {', '.join(unknown)} (known: {', '.join(EventKind.values)})"
                )
        # null or an absent key means "all" (of what the user may read).
        self.cameras = set(cameras) if cameras is not None else None
        self.vehicle_types = set(vehicle_types) if vehicle_types is not None else None
        self.kinds = self.readable_kinds & set(kinds) if kinds is not None else self.readable_kinds
        await self.send_json(
            {
                "type": "subscribed",
                "cameras": sorted(self.cameras) if self.cameras is not None else None,
                "vehicle_types": sorted(self.vehicle_types) if self.vehicle_types is not None else None,
                "types": sorted(self.kinds),
            }
        )

    async def resume(self, after: int):
        """Replay every event after `after` from the log, then carry on live."""
        async with self.delivering:
            await self.replay(after)

    async def replay(self, after: int):
        self.last_seq = after
        if not await self.catch_up():
            head = await database_sync_to_async(messages.feed_head)()
            self.last_seq = head
            await self.send_json(
                {
                    "type": "reset",
                    "seq": head,
                    "detail": f"events after {after} are no longer available; reload, then follow from seq {head}",
                }
            )

    async def catch_up(self) -> bool:
        """Deliver every logged event after last_seq. False if the log cannot."""
        while True:
            page = await database_sync_to_async(messages.replay_after)(self.last_seq)
            if page is None:
                return False
            if not page:
                return True
            for message in page:
                await self.deliver(message)

    # --- broadcaster -> client ----------------------------------------------------------

    def offer(self, message: dict):
        """Called by the broadcaster for every live event."""
        if self.inbox.qsize() < INBOX_LIMIT:
            self.inbox.put_nowait(message)
        elif not self.overflowed:
            # The client is not reading: no more live events for it, one catch-up instead.
            self.overflowed = True
            self.inbox.put_nowait(CATCH_UP)
            metrics.FEED_INBOX_OVERFLOWS.inc()

    def backlog(self) -> int:
        """Live events waiting to be sent to this socket."""
        return self.inbox.qsize()

    async def send_live_events(self):
        while True:
            message = await self.inbox.get()
            try:
                async with self.delivering:
                    await self.feed_event(message)
            except OSError:
                # The connection failed under the send (uvicorn's ClientDisconnected
                # among others): close it, so that a client still there reconnects
                # and resumes instead of waiting on a socket that sends nothing more.
                with contextlib.suppress(OSError):
                    await self.close(code=1011)
                return
            except Exception:
                # The database is down while filling a gap, say: this event stays
                # undelivered, and the next one reveals the gap and tries again.
                logger.exception("could not deliver feed event %s", message.get("seq"))

    async def feed_event(self, message: dict):
        if message is CATCH_UP:
            # The inbox is empty behind it: live events queue again while the log is read.
            self.overflowed = False
            await self.catch_up()
            return
        seq = message["seq"]
        if seq <= self.last_seq:
            return  # already delivered (replayed, or a duplicate)
        if seq > self.last_seq + 1:
            # Events before this one were lost or are late: read them from the log,
            # which holds this one too (it was committed before it was published).
            if await self.catch_up():
                return
            logger.warning("feed gap before seq %s could not be filled from the log", seq)
        await self.deliver(message)

    async def deliver(self, message: dict):
        self.last_seq = message["seq"]
        if message["kind"] not in self.kinds:
            return
        # A site's event is about the site, not a camera or a vehicle: no filter of those applies.
        if message["kind"] != EventKind.SITE:
            if self.cameras is not None and self.cameras.isdisjoint(message.get("cameras") or (message["camera"],)):
                return
            if self.vehicle_types is not None and message["vehicle_type"] not in self.vehicle_types:
                return
        # Straight to the server: channels' session wrapper, which every send of
        # the consumer's passes, checks the session on each event for nothing
        # (a socket saves no session after its handshake).
        await self.scope.get(SERVER_SEND, self.base_send)(
            message.get("send") or {"type": "websocket.send", "text": message["text"]}
        )

    # --- helpers --------------------------------------------------------------------------

    async def send_json(self, content: dict):
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def send_error(self, code: str, detail: str):
        await self.send_json({"type": "error", "code": code, "detail": detail})


def _query_int(scope, name: str) -> int | None:
    try:
        value = int(query_param(scope, name) or "")
    except ValueError:
        return None
    return value if value >= 0 else None
