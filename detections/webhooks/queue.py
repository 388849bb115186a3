"""The outbox as the delivery workers see it: claim what is due, record what
came of each attempt, and put a message back in the queue (resend).

Several workers, on several hosts, share the outbox. A worker claims a message
in a short transaction (`SELECT ... FOR UPDATE SKIP LOCKED`, so workers never
wait for each other) by setting `claimed_until` a little beyond the longest an
attempt may take; until then no other worker takes it. It sends outside any
transaction, then records the attempt. A worker that dies mid-attempt records
nothing: its claim runs out and the message is sent again, with the same
webhook-id. An outcome is applied only by the worker whose claim is still the
message's, so a worker that outlived its claim (or a message resent or failed
meanwhile) adds its attempt to the history and changes nothing else.
"""

import logging
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from detections.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from detections.webhooks import outbox, secrets, sql

logger = logging.getLogger(__name__)

# The longest a Retry-After answer can hold a message back.
MAX_RETRY_AFTER_SECONDS = 3600.0
JITTER = 0.1
ERROR_LENGTH = WebhookAttempt._meta.get_field("error").max_length


def claim_seconds() -> float:
    """How long a claim lasts: an attempt's whole timeout, then as long again
    (and a second) to record it, so a claim never runs out under a live attempt."""
    return 2 * settings.WEBHOOK_TIMEOUT_SECONDS + 1


@dataclass(frozen=True)
class Claim:
    """A message a worker may send now: everything the attempt needs."""

    message_pk: int
    message_id: str
    endpoint_id: int
    url: str
    secret: str
    body: str
    created_at: datetime
    claimed_until: datetime  # the claim's identity: whoever holds it applies the outcome


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error without one."""

    attempted_at: datetime
    latency_ms: float
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None  # seconds, from the answer's Retry-After

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


@dataclass(frozen=True)
class Recorded:
    """What became of the message after an attempt (None fields: not ours to change)."""

    status: str | None
    attempt: int
    next_attempt_at: datetime | None = None


def database_now() -> datetime:
    """The database's clock: every worker, on whatever host, compares claims
    against the same one."""
    if connection.vendor != "mysql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT UTC_TIMESTAMP(6)")
        return cursor.fetchone()[0].replace(tzinfo=UTC)


def claim_due(wanted: dict[int, int], default: int) -> tuple[list[Claim], set[int]]:
    """Claim the due messages of every active endpoint, oldest first, as many
    of each as `wanted` says (`default` for an endpoint it does not name).
    Also answers which endpoints gave all that was asked: they may have more."""
    now = database_now()
    with transaction.atomic():
        return _claim_due(wanted, default, now, now + timedelta(seconds=claim_seconds()))


def fan_out_and_claim(wanted: dict[int, int], default: int) -> tuple[list[Claim], set[int], bool]:
    """A worker's step, in one transaction: claim what is due, then make the
    messages of the events committed since the last step (`outbox`), taking
    each endpoint's new ones up to what it still wants as claims at once. The
    claims, the endpoints that gave all that was asked, and whether more events wait."""
    now = database_now()
    claimed_until = now + timedelta(seconds=claim_seconds())
    with transaction.atomic():
        claims, _ = _claim_due(wanted, default, now, claimed_until)
        taken = Counter(claim.endpoint_id for claim in claims)
        readable: dict[int, str | None] = {}

        def free(endpoint: outbox.Endpoint) -> int:
            left = wanted.get(endpoint.id, default) - taken[endpoint.id]
            if left <= 0:
                return 0
            readable[endpoint.id] = _secret(endpoint.id, endpoint.secret_encrypted)
            return left if readable[endpoint.id] is not None else 0

        step = outbox.fan_out_claiming(free, claimed_until)
        claims += [
            Claim(
                message_pk=made.pk,
                message_id=made.message_id,
                endpoint_id=made.endpoint.id,
                url=made.endpoint.url,
                secret=readable[made.endpoint.id],
                body=made.body,
                created_at=made.created_at,
                claimed_until=claimed_until,
            )
            for made in step.claimed
        ]
    got = Counter(claim.endpoint_id for claim in claims)
    filled = {pk for pk, n in got.items() if n >= wanted.get(pk, default)}
    return claims, filled, step.more


def _secret(endpoint_id: int, encrypted: str) -> str | None:
    try:
        return secrets.decrypt(encrypted)
    except ImproperlyConfigured as unreadable:
        logger.error("webhook endpoint %s is skipped: %s", endpoint_id, unreadable)
        return None


def _claim_due(wanted, default, now: datetime, claimed_until: datetime) -> tuple[list[Claim], set[int]]:
    """claim_due's work, inside the caller's transaction."""
    due_endpoints = set(
        WebhookMessage.objects.filter(status=MessageStatus.PENDING, next_attempt_at__lte=now)
        .order_by()
        .values_list("endpoint_id", flat=True)
        .distinct()
    )
    if not due_endpoints:
        return [], set()
    known = list(WebhookEndpoint.objects.filter(pk__in=due_endpoints).only("pk", "url", "secret_encrypted", "active"))
    gone = due_endpoints - {endpoint.pk for endpoint in known}
    if gone:
        # Made by a fan-out step that read the endpoints just as one was deleted.
        WebhookMessage.objects.filter(endpoint_id__in=gone).delete()
    free = {endpoint.pk: wanted.get(endpoint.pk, default) for endpoint in known}
    endpoints = [endpoint for endpoint in known if endpoint.active and free[endpoint.pk] > 0]
    claims, filled = [], set()
    for endpoint in endpoints:
        secret = _secret(endpoint.pk, endpoint.secret_encrypted)
        if secret is None:
            continue
        messages = list(
            WebhookMessage.objects.select_for_update(skip_locked=True)
            .filter(endpoint=endpoint, status=MessageStatus.PENDING, next_attempt_at__lte=now)
            .order_by("id")
            .only("pk", "message_id", "body", "created_at")[: free[endpoint.pk]]
        )
        if not messages:
            continue
        # next_attempt_at too: a claimed message leaves the due set, and is due
        # again when the claim runs out (a worker that died mid-attempt).
        WebhookMessage.objects.filter(pk__in=[m.pk for m in messages]).update(
            claimed_until=claimed_until, next_attempt_at=claimed_until
        )
        if len(messages) == free[endpoint.pk]:
            filled.add(endpoint.pk)
        claims += [
            Claim(
                message_pk=m.pk,
                message_id=m.message_id,
                endpoint_id=endpoint.pk,
                url=endpoint.url,
                secret=secret,
                body=m.body,
                created_at=m.created_at,
                claimed_until=claimed_until,
            )
            for m in messages
        ]
    return claims, filled


def retry_wait(position: int, retry_after: float | None) -> float:
    """Seconds before the next attempt after the `position`-th one failed: the
    schedule's step (its last repeating), spread by the jitter, and never less
    than a Retry-After answer asked for, up to an hour."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    wait = schedule[min(position, len(schedule)) - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return wait


def record_all(results: list[tuple[Claim, Outcome]]) -> list[Recorded | None]:
    """Store attempts and apply their outcomes, all in one transaction (one
    commit for a batch is what lets a worker keep up with hundreds a second);
    None for a message that is gone (its endpoint was deleted)."""
    with transaction.atomic():
        # Endpoints, then messages, each in id order: every path that locks
        # several takes them in this order, so two workers never deadlock.
        gone = sorted({claim.endpoint_id for claim, outcome in results if outcome.gone})
        endpoints = {e.pk: e for e in WebhookEndpoint.objects.select_for_update().filter(pk__in=gone).order_by("pk")}
        messages = {
            m.pk: m
            for m in WebhookMessage.objects.select_for_update()
            .filter(pk__in=[claim.message_pk for claim, _ in results])
            .order_by("pk")
            .only(*RECORDED_FIELDS)  # not the body, which the claim holds
        }
        _insert_attempts([(claim.message_pk, outcome) for claim, outcome in results if claim.message_pk in messages])
        now = database_now()
        applied: dict[int, WebhookMessage] = {}
        recorded = [
            _apply(messages[claim.message_pk], claim, outcome, now, endpoints, messages, applied)
            if claim.message_pk in messages
            else None
            for claim, outcome in results
        ]
        _save(applied.values(), now)
        return recorded


APPLIED_FIELDS = ["status", "attempt_count", "first_attempt_at", "claimed_until", "delivered_at", "next_attempt_at"]
RECORDED_FIELDS = ["pk", "endpoint_id", *APPLIED_FIELDS]


def _insert_attempts(attempts: list[tuple[int, Outcome]]):
    """The batch's attempts, in one plain INSERT."""
    time_field = WebhookAttempt._meta.get_field("attempted_at")
    sql.insert_rows(
        WebhookAttempt,
        ["message_id", "attempted_at", "status_code", "error", "latency_ms"],
        [
            (
                message_pk,
                time_field.get_db_prep_value(outcome.attempted_at, connection),
                outcome.status_code,
                outcome.error[:ERROR_LENGTH],
                outcome.latency_ms,
            )
            for message_pk, outcome in attempts
        ],
    )


def _save(applied, now: datetime):
    """Save the batch's outcomes. The delivered ones, nearly all of them, take
    one plain UPDATE (Django's bulk_update costs more to build than to run);
    the rest one UPDATE ... CASE."""
    delivered = [m for m in applied if m.status == MessageStatus.DELIVERED]
    others = [m for m in applied if m.status != MessageStatus.DELIVERED]
    if delivered:
        table = connection.ops.quote_name(WebhookMessage._meta.db_table)
        when_time = WebhookMessage._meta.get_field("first_attempt_at")
        cases = " ".join(["WHEN %s THEN %s"] * len(delivered))
        ids = ", ".join(["%s"] * len(delivered))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET status = %s, delivered_at = %s, claimed_until = NULL, "
                f"attempt_count = attempt_count + 1, first_attempt_at = CASE id {cases} END WHERE id IN ({ids})",
                [
                    MessageStatus.DELIVERED.value,
                    when_time.get_db_prep_value(now, connection),
                    *(
                        v
                        for m in delivered
                        for v in (m.pk, when_time.get_db_prep_value(m.first_attempt_at, connection))
                    ),
                    *(m.pk for m in delivered),
                ],
            )
    if others:
        WebhookMessage.objects.bulk_update(others, APPLIED_FIELDS, batch_size=500)


def _apply(message, claim, outcome, now, endpoints, locked, applied) -> Recorded:
    """The outcome in the batch's copy of the message (saved by record_all, in `applied`)."""
    attempt = message.attempt_count + 1
    if message.status != MessageStatus.PENDING or message.claimed_until != claim.claimed_until:
        WebhookMessage.objects.filter(pk=message.pk).update(attempt_count=F("attempt_count") + 1)
        return Recorded(status=None, attempt=attempt)
    message.attempt_count = attempt
    message.first_attempt_at = message.first_attempt_at or outcome.attempted_at
    message.claimed_until = None
    if outcome.delivered:
        message.status = MessageStatus.DELIVERED
        message.delivered_at = now
    elif outcome.gone:
        if endpoints[message.endpoint_id].active:
            disable(endpoints[message.endpoint_id], f"answered 410 Gone at {now.isoformat(timespec='seconds')}")
        # What the statement above did to the rows, in the batch's copies of them.
        for other in locked.values():
            if other.endpoint_id == message.endpoint_id and other.status == MessageStatus.PENDING:
                other.status = MessageStatus.FAILED
        message.status = MessageStatus.FAILED
    else:
        # Attempts since the schedule (re)started: a resend starts it afresh.
        position = message.attempts.filter(attempted_at__gte=message.first_attempt_at).count()
        next_attempt_at = now + timedelta(seconds=retry_wait(position, outcome.retry_after))
        deadline = message.first_attempt_at + timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS)
        if next_attempt_at > deadline:
            message.status = MessageStatus.FAILED
        else:
            message.next_attempt_at = next_attempt_at
    applied[message.pk] = message
    return Recorded(
        status=message.status,
        attempt=attempt,
        next_attempt_at=message.next_attempt_at if message.status == MessageStatus.PENDING else None,
    )


def disable(endpoint: WebhookEndpoint, reason: str):
    """Turn the endpoint off and keep its pending messages as failed (inside
    the caller's transaction, with the endpoint locked)."""
    endpoint.active = False
    endpoint.disabled_reason = reason[: WebhookEndpoint._meta.get_field("disabled_reason").max_length]
    # save(), not update(): updated_at says when. The next fan-out step reads
    # the endpoint again and makes it no more messages.
    endpoint.save(update_fields=["active", "disabled_reason", "updated_at"])
    WebhookMessage.objects.filter(endpoint=endpoint, status=MessageStatus.PENDING).update(
        status=MessageStatus.FAILED, claimed_until=None
    )


def release(claims: list[Claim]):
    """Give back claimed messages that were not sent: due again at once, for any worker."""
    now = database_now()
    for claimed_until in {claim.claimed_until for claim in claims}:
        WebhookMessage.objects.filter(
            pk__in=[claim.message_pk for claim in claims if claim.claimed_until == claimed_until],
            status=MessageStatus.PENDING,
            claimed_until=claimed_until,
        ).update(claimed_until=None, next_attempt_at=now)


class NotResendable(Exception):
    """The message cannot be put back in the queue; the message says why."""


def resend(message: WebhookMessage) -> WebhookMessage:
    """Queue a failed or delivered message again with a fresh schedule and
    the same webhook-id; a pending one (perhaps being sent right now) is left
    alone, and a disabled endpoint takes nothing."""
    with transaction.atomic():
        message = WebhookMessage.objects.select_for_update().select_related("endpoint").get(pk=message.pk)
        if message.status == MessageStatus.PENDING:
            raise NotResendable("The message is pending already; it is sent as its schedule says.")
        if not message.endpoint.active:
            raise NotResendable("The endpoint is turned off; turn it on (active: true) before resending.")
        message.status = MessageStatus.PENDING
        message.next_attempt_at = database_now()
        message.first_attempt_at = None
        message.delivered_at = None
        message.claimed_until = None
        message.save(update_fields=["status", "next_attempt_at", "first_attempt_at", "delivered_at", "claimed_until"])
    return message
