"""The webhook outbox is the event log.

Every detection created or deleted and every alert raised is an Event row,
written in the transaction of the change: a committed change is always
delivered and a rolled-back one never is. The write path writes nothing else
for webhooks, so the serial part of ingest costs the same with endpoints as
without.

The delivery workers turn the events into messages (`fan_out`): one per event
and active endpoint that takes it, as a step of the log's follower named
"webhooks" (`detections.core.followers`): the messages commit with the cursor
that moves past their events, one worker at a time takes a step, and a worker
that dies mid-step leaves nothing, so the next step does the same work again.

An endpoint receives the events after the feed's head at its first save
(WebhookEndpoint.after_seq), and is taken as it is when the step runs: an
endpoint turned off then gets nothing of the events of that step.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import connection

from detections.core import events
from detections.core.followers import Follower, Span
from detections.core.formats import format_time
from detections.models import Event, EventKind, MessageStatus, WebhookEndpoint, WebhookEvent, WebhookMessage
from detections.sites.payloads import routing_cameras
from detections.webhooks import sql

WEBHOOK_EVENT_OF = {
    EventKind.NEW_DETECTION: WebhookEvent.DETECTION_CREATED,
    EventKind.DELETION: WebhookEvent.DETECTION_DELETED,
    EventKind.ALERT: WebhookEvent.ALERT_TRIGGERED,
    EventKind.DETECTION_UPDATED: WebhookEvent.DETECTION_UPDATED,
}
KIND_OF = {event_type: kind for kind, event_type in WEBHOOK_EVENT_OF.items()}
# Visits, sites and journeys: one kind of event each, named by what happened
# ("visit.closed", "journey.speeding").
NAMED_BY_EVENT = (EventKind.VISIT, EventKind.SITE, EventKind.JOURNEY)
for _kind in NAMED_BY_EVENT:
    KIND_OF.update({name: _kind for name in WebhookEvent.values if name.startswith(f"{_kind}.")})


def webhook_event_type(event: Event) -> str | None:
    """The webhook event name of a logged event (None: no webhook hears of it)."""
    if event.kind in NAMED_BY_EVENT:
        name = f"{event.kind}.{event.payload.get('event')}"
        return WebhookEvent(name) if name in KIND_OF else None
    return WEBHOOK_EVENT_OF.get(event.kind)


# Seqs one step reads at most: a few hundred messages per endpoint in one insert.
PAGE = 500


@dataclass(frozen=True)
class Endpoint:
    """An active endpoint, as the fan-out filters events for it (and as a
    worker that claims its new messages sends them)."""

    id: int
    events: frozenset[str]
    cameras: frozenset[str]
    after_seq: int
    url: str = ""
    secret_encrypted: str = ""

    def takes(self, event: Event, event_type: str) -> bool:
        return event.seq > self.after_seq and event_type in self.events and self._takes_cameras(event)

    def _takes_cameras(self, event: Event) -> bool:
        if not self.cameras or event.kind == EventKind.SITE:
            return True  # a site's event is about the site, not one camera
        visit_cameras = routing_cameras(event.payload)
        if visit_cameras is not None:
            return not self.cameras.isdisjoint(visit_cameras)
        return event.camera in self.cameras


@dataclass(frozen=True)
class Made:
    """A message a step made claimed for the worker that took the step."""

    pk: int
    endpoint: Endpoint
    message_id: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class Step:
    more: bool  # more committed events wait for the next step
    claimed: list[Made]


def active_endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            id=pk,
            events=frozenset(events),
            cameras=frozenset(cameras or ()),
            after_seq=after_seq or 0,
            url=url,
            secret_encrypted=secret_encrypted,
        )
        for pk, events, cameras, after_seq, url, secret_encrypted in WebhookEndpoint.objects.filter(
            active=True
        ).values_list("pk", "events", "cameras", "after_seq", "url", "secret_encrypted")
    ]


def _first_needed(endpoints: list[Endpoint], head: int) -> int:
    """Every event up to the lowest after_seq of the active endpoints needs no
    message, and without any active endpoint no event up to the head does."""
    return min((endpoint.after_seq for endpoint in endpoints), default=head)


FANOUT = Follower("webhooks", needs_nothing_up_to=lambda position, head: _first_needed(active_endpoints(), head))


def fan_out(page: int = PAGE) -> bool:
    """Make the messages of the next events (at most `page` seqs past the
    cursor) and move the cursor past them, in one transaction; a step another
    worker is taking is waited for. True when more committed events are
    waiting for the next step."""
    return FANOUT.step(_fan_out_work(page, claim=None, claimed_until=None, claimed=[]), wait=True).more


def fan_out_claiming(claim: Callable[[Endpoint], int], claimed_until: datetime, page: int = PAGE) -> Step:
    """A step as `fan_out` takes it, in the caller's transaction, that inserts
    the first `claim(endpoint)` new messages of each endpoint claimed until
    `claimed_until` (the worker has them at hand: no claim needs to find them
    again). While another worker is taking a step, nothing: that one makes
    these messages."""
    claimed: list[Made] = []
    progress = FANOUT.step(_fan_out_work(page, claim=claim, claimed_until=claimed_until, claimed=claimed))
    return Step(more=progress.more, claimed=claimed)


def _fan_out_work(page: int, *, claim, claimed_until, claimed: list[Made]) -> Callable[[Span], int]:
    def work(span: Span) -> int:
        # The head before the endpoints: an endpoint this does not see yet is
        # committed after every event up to the head was.
        endpoints = active_endpoints()
        start = max(span.after, min(span.head, _first_needed(endpoints, span.head)))
        upper = min(span.head, start + page)
        if upper > start:
            # An event type no release knows (a hand-edited row) matches nothing, as before.
            kinds = {KIND_OF[name] for endpoint in endpoints for name in endpoint.events if name in KIND_OF}
            events = (
                Event.objects.filter(seq__gt=start, seq__lte=upper, to_webhooks=True, kind__in=kinds)
                .order_by("seq")
                .only("seq", "kind", "camera", "payload", "created_at")
            )
            wanted = {endpoint.id: max(0, claim(endpoint)) for endpoint in endpoints} if claim else {}
            rows, made = _messages(events, endpoints, wanted, claimed_until)
            pks = _insert(rows, returning=bool(made))
            claimed.extend(replace(one, pk=pks[index]) for index, one in made)
        return upper

    return work


# What a new message row holds; the other columns start empty (NULL).
_COLUMNS = ["endpoint_id", "message_id", "event_type", "seq", "body", "status", "attempt_count"]
_COLUMNS += ["next_attempt_at", "created_at", "claimed_until"]


def _messages(events, endpoints: list[Endpoint], wanted: dict[int, int], claimed_until) -> tuple[list, list]:
    """The rows of the events' messages, in seq order, as `_COLUMNS` says, and
    the claimed ones among them (each with its row's index; pk unknown yet)."""
    time_field = WebhookMessage._meta.get_field("created_at")
    until = time_field.get_db_prep_value(claimed_until, connection) if claimed_until else None
    pending = MessageStatus.PENDING.value
    rows, claimed = [], []
    for event in events:
        event_type = webhook_event_type(event)
        if event_type is None:
            continue
        receivers = [endpoint for endpoint in endpoints if endpoint.takes(event, event_type)]
        if not receivers:
            continue
        body = message_body(event, event_type)
        # The event's time: the delivery latency starts at the commit, and the
        # message is due at once.
        at = time_field.get_db_prep_value(event.created_at, connection)
        for endpoint in receivers:
            message_id = f"msg_{uuid.uuid4().hex}"
            due, claimed_to = at, None
            if wanted.get(endpoint.id, 0) > 0:
                # As a claim leaves it: due again when the claim runs out.
                wanted[endpoint.id] -= 1
                claimed.append((len(rows), Made(0, endpoint, message_id, body, event.created_at)))
                due, claimed_to = until, until
            rows.append((endpoint.id, message_id, event_type.value, event.seq, body, pending, 0, due, at, claimed_to))
    return rows, claimed


def _insert(rows: list[tuple], *, returning: bool) -> list[int]:
    """Insert the message rows; with `returning`, their ids, in order."""
    pks = sql.insert_rows(WebhookMessage, _COLUMNS, rows, returning=returning)
    if returning and not pks and rows:
        # A database without INSERT ... RETURNING (MySQL): read them back by webhook-id.
        by_id = dict(
            WebhookMessage.objects.filter(message_id__in=[row[1] for row in rows]).values_list("message_id", "pk")
        )
        pks = [by_id[row[1]] for row in rows]
    return pks


def message_body(event: Event, event_type: str) -> str:
    """The JSON a message sends, byte for byte on every attempt."""
    return json.dumps(
        {
            "type": event_type,
            "timestamp": format_time(event.created_at),
            "seq": event.seq,
            "data": message_data(event.payload),
        },
        separators=(",", ":"),
    )


def message_data(payload: dict) -> dict:
    """The socket message of an event without type and seq, with absolute URLs."""
    return {key: value for key, value in events.with_absolute_urls(payload).items() if key not in ("type", "seq")}
