"""The delivery worker (`manage.py deliver_webhooks`): makes the messages of
the events committed since it last looked (`outbox.fan_out`), then sends them.

One asyncio loop sends every attempt; the database work runs on two threads
of its own (claims on one, outcomes on the other), one connection each. Each
endpoint has WEBHOOK_CONCURRENCY_PER_ENDPOINT slots and its own connection
pool. A claim takes up to twice as many of an endpoint's messages as it has
slots, oldest first, and they wait in the worker for a free slot; so an
endpoint that hangs holds its own slots and nobody else's, while the others
are claimed and sent meanwhile. A claimed message that could not start in time
to end within its claim is left for the claim to run out (and for another
worker); at a stop, those not started are handed back at once.

Each time it wakes (a commit, or every WEBHOOK_POLL_SECONDS while idle) the
worker takes a step on the claiming thread, in one transaction: it claims what
is due, then makes the messages of the events committed since the last step
(`outbox`), the new ones it has slots for claimed at once. An endpoint whose
claim got all it asked for is claimed again as soon as its waiting messages
run low, and a step that left events for the next one wakes it again. The attempts that ended meanwhile are recorded together, in one
transaction.

An attempt is a POST to the checked address of the endpoint's URL (the SSRF
check runs before each attempt, `targets`), signed at that moment (`signing`),
bounded as a whole by WEBHOOK_TIMEOUT_SECONDS (a receiver that trickles its
answer times out too), without following redirects. Whatever a receiver does,
answering garbage, hanging or closing the connection, is a failed attempt,
never a failed worker.
"""

import asyncio
import functools
import logging
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from detections.core import followers
from detections.models import MessageStatus
from detections.operations import metrics
from detections.webhooks import queue, signing, targets

logger = logging.getLogger(__name__)

# How much of an answer's body is read: enough to keep the connection for the
# next message; a receiver sending more has it cut off, and the connection closed.
MAX_ANSWER_BYTES = 64 * 1024
# How long the worker waits before claiming again after the database failed.
DATABASE_RETRY_SECONDS = 2.0
MIN_CLAIM_INTERVAL_SECONDS = 0.02
# Outcomes are recorded at most this often, so that one transaction records many.
MIN_RECORD_INTERVAL_SECONDS = 0.05
# Each endpoint's claims take up to this many times its slots: the next
# messages are at hand when a slot frees, and one claim serves several attempts.
CLAIM_AHEAD = 2


async def attempt(client: aiohttp.ClientSession, claim: queue.Claim, *, timeout: float) -> queue.Outcome:
    """POST the message once; what came of it (never raises for what the receiver does)."""
    attempted_at = timezone.now()
    started = time.monotonic()
    status_code = retry_after = None
    error = ""
    try:
        async with asyncio.timeout(timeout):
            target = await checked_target(claim.url)
            headers = signing.signed_headers(
                message_id=claim.message_id, body=claim.body, secret=claim.secret, at=time.time()
            )
            async with client.post(
                target.connect_url,
                data=claim.body.encode(),
                headers={**headers, "host": target.host_header},
                allow_redirects=False,
                server_hostname=target.tls_server_name,
            ) as response:
                received = 0
                async for chunk in response.content.iter_any():
                    received += len(chunk)
                    if received > MAX_ANSWER_BYTES:
                        break
                status_code = response.status
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
    except targets.RefusedTarget as refused:
        error = f"refused: {refused}"
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except (aiohttp.ClientError, OSError, ValueError) as failed:
        # ValueError: an answer aiohttp cannot parse at all, as a garbled status line.
        error = f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__
    return queue.Outcome(
        attempted_at=attempted_at,
        latency_ms=(time.monotonic() - started) * 1000,
        status_code=status_code,
        error=error,
        retry_after=retry_after,
    )


async def checked_target(url: str) -> targets.Target:
    """The SSRF check of `url`, on a thread only when it must look up a name:
    an address needs no lookup and is checked in microseconds."""
    if targets.names_an_address(url):
        return targets.check(url)
    return await asyncio.to_thread(targets.check, url)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - timezone.now()).total_seconds())


def outcome_kind(outcome: queue.Outcome) -> str:
    """The attempt's label in vehicle_monitor_webhook_attempts_total."""
    if outcome.delivered:
        return "delivered"
    if outcome.status_code is not None:
        return "rejected"
    if outcome.error.startswith("refused"):
        return "refused"
    if outcome.error.startswith("no answer"):
        return "timeout"
    return "network_error"


@dataclass
class Slots:
    """One endpoint's share of a worker: attempts under way, and claimed
    messages waiting for a free slot (oldest first)."""

    in_flight: int = 0
    waiting: deque = field(default_factory=deque)  # (claim, start by this monotonic time)

    @property
    def held(self) -> int:
        return self.in_flight + len(self.waiting)


class Worker:
    def __init__(self, *, concurrency: int, poll_seconds: float):
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.timeout = settings.WEBHOOK_TIMEOUT_SECONDS
        self.slots: dict[int, Slots] = defaultdict(Slots)  # by endpoint
        self.tasks: set[asyncio.Task] = set()
        self.backlogged: set[int] = set()  # endpoints whose last claim got all it asked for
        self.finished: list[tuple[queue.Claim, queue.Outcome]] = []  # attempts not recorded yet
        self.clients: dict[tuple[int, str], aiohttp.ClientSession] = {}  # by endpoint and host name
        # Two threads, each with its own database connection: claims never wait
        # behind the recording of attempts, nor the other way round.
        self.claiming = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-claims")
        self.recording = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-outcomes")
        self.wake = asyncio.Event()
        self.attempt_finished = asyncio.Event()
        self.stopping = False
        self.abandoning = asyncio.Event()
        self.closing = False  # no attempt is under way any more: the recorder may end

    def stop(self):
        """The first call lets the attempts in flight finish; a second abandons them."""
        if self.stopping:
            self.abandoning.set()
        self.stopping = True
        self.wake.set()

    async def run(self, *, once: bool = False):
        """Deliver until stopped (or, `once`, until nothing is due and nothing in flight)."""
        recorder = asyncio.create_task(self._record_continuously())
        listener = asyncio.create_task(followers.wake_on_commits(self.wake, channel_prefix="webhooks."))
        try:
            claimed_at = float("-inf")
            while not self.stopping:
                # Woken by every commit under load: fan out and claim at most this
                # often, so that many commits share one step instead of one each.
                await asyncio.sleep(max(0.0, claimed_at + MIN_CLAIM_INTERVAL_SECONDS - time.monotonic()))
                self.wake.clear()
                wanted = {pk: CLAIM_AHEAD * self.concurrency - slots.held for pk, slots in self.slots.items()}
                claimed_at = time.monotonic()
                try:
                    claims, self.backlogged, more = await self._in_database(
                        self.claiming, queue.fan_out_and_claim, wanted, CLAIM_AHEAD * self.concurrency
                    )
                except DatabaseError as problem:
                    logger.warning(
                        "could not fan out or claim webhook messages (trying again in %g s): %s",
                        DATABASE_RETRY_SECONDS,
                        problem,
                    )
                    await self._pause(DATABASE_RETRY_SECONDS)
                    continue
                # An attempt starts only while it can end, and be recorded, within its claim.
                start_by = claimed_at + queue.claim_seconds() - self.timeout - 1
                for claim in claims:
                    self.slots[claim.endpoint_id].waiting.append((claim, start_by))
                for endpoint_id in {claim.endpoint_id for claim in claims}:
                    self._start_waiting(endpoint_id)
                if more:
                    self.wake.set()  # the next events at the next step, not at the next poll
                elif once and not claims and not self.tasks and not self.finished:
                    break
                await self._pause(self.poll_seconds)
        finally:
            listener.cancel()
            await self._finish(recorder)

    async def _pause(self, seconds: float):
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass

    def _start_waiting(self, endpoint_id: int):
        """Fill the endpoint's free slots from what it has waiting, oldest first."""
        slots = self.slots[endpoint_id]
        while slots.waiting and slots.in_flight < self.concurrency and not self.stopping:
            claim, start_by = slots.waiting.popleft()
            if time.monotonic() > start_by:
                # Too late to end within its claim: left for the claim to run
                # out, and for whichever worker claims it then.
                continue
            slots.in_flight += 1
            task = asyncio.create_task(self._deliver(claim))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if not slots.held:
            del self.slots[endpoint_id]
        elif endpoint_id in self.backlogged and len(slots.waiting) < self.concurrency:
            self.wake.set()  # claim more of its backlog now, not at the next poll

    async def _deliver(self, claim: queue.Claim):
        try:
            outcome = await attempt(self._client(claim), claim, timeout=self.timeout)
        except Exception:
            # A bug, not a receiver's doing: logged with its traceback; the claim
            # runs out and the message is sent again.
            logger.exception("webhook %s: the attempt failed unexpectedly", claim.message_id)
            return
        finally:
            # The slot is free once the attempt is over; its claim still keeps the
            # message from every worker until the outcome is recorded.
            self.slots[claim.endpoint_id].in_flight -= 1
            self._start_waiting(claim.endpoint_id)
        metrics.WEBHOOK_ATTEMPTS.labels(outcome=outcome_kind(outcome)).inc()
        if outcome.delivered:
            answered_at = outcome.attempted_at + timedelta(milliseconds=outcome.latency_ms)
            metrics.WEBHOOK_DELIVERY_SECONDS.observe((answered_at - claim.created_at).total_seconds())
        self.finished.append((claim, outcome))
        self.attempt_finished.set()

    async def _record_continuously(self):
        while not self.closing:
            await self.attempt_finished.wait()
            recorded_at = time.monotonic()
            await self._record_finished()
            await asyncio.sleep(max(0.0, recorded_at + MIN_RECORD_INTERVAL_SECONDS - time.monotonic()))

    async def _record_finished(self):
        """Record every attempt that has ended since the last time, in one transaction."""
        self.attempt_finished.clear()
        batch, self.finished = self.finished, []
        if not batch:
            return
        try:
            recorded = await self._in_database(self.recording, queue.record_all, batch)
        except DatabaseError as problem:
            logger.warning(
                "could not record %d webhook attempt(s) (their messages are sent again when their claims run out): %s",
                len(batch),
                problem,
            )
            return
        except Exception:
            logger.exception("could not record %d webhook attempt(s)", len(batch))
            return
        for (claim, outcome), result in zip(batch, recorded, strict=True):
            self._report(claim, outcome, result)

    def _report(self, claim: queue.Claim, outcome: queue.Outcome, recorded: queue.Recorded | None):
        if outcome.delivered:
            return
        what = f"HTTP {outcome.status_code}" if outcome.status_code is not None else outcome.error
        attempt_number = recorded.attempt if recorded else "?"
        if recorded is None or recorded.status is None:
            then = "the message was changed meanwhile, so nothing else follows from it"
        elif outcome.gone:
            then = f"endpoint {claim.endpoint_id} is turned off and its pending messages kept as failed"
        elif recorded.status == MessageStatus.FAILED:
            then = "no more attempts: the message is kept as failed (it can be resent)"
        else:
            wait = (recorded.next_attempt_at - timezone.now()).total_seconds()
            then = f"next attempt in {max(wait, 0):.1f} s"
        logger.warning(
            "webhook %s to endpoint %s, attempt %s: %s; %s",
            claim.message_id,
            claim.endpoint_id,
            attempt_number,
            what,
            then,
        )

    def _client(self, claim: queue.Claim) -> aiohttp.ClientSession:
        """The endpoint's own client: its pool never serves another endpoint, and
        a connection made for one host name (TLS server name included) is never
        reused for another."""
        key = (claim.endpoint_id, urlsplit(claim.url).hostname)
        if key in self.clients:
            return self.clients[key]
        client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            # No proxy from the environment: the connection goes to the checked address.
            trust_env=False,
            # The attempt's own deadline bounds it as a whole.
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )
        self.clients[key] = client
        return client

    async def _in_database(self, thread: ThreadPoolExecutor, function, *args):
        return await asyncio.get_running_loop().run_in_executor(
            thread, functools.partial(_with_fresh_connection, function, *args)
        )

    async def _finish(self, recorder: asyncio.Task):
        """Let the attempts in flight end (each is bounded by the timeout) and
        record them, unless told to abandon them: then they are cancelled, and
        their messages are sent again when their claims run out."""
        if self.tasks:
            logger.info("waiting for %d webhook attempt(s) in flight", len(self.tasks))
            abandon = asyncio.create_task(self.abandoning.wait())
            while self.tasks and not abandon.done():
                await asyncio.wait({*self.tasks, abandon}, return_when=asyncio.FIRST_COMPLETED)
            abandon.cancel()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        waiting = [claim for slots in self.slots.values() for claim, _ in slots.waiting]
        if waiting:
            # Back to the outbox at once rather than when their claims run out.
            try:
                await self._in_database(self.claiming, queue.release, waiting)
            except DatabaseError as problem:
                logger.warning("could not release %d claimed webhook message(s): %s", len(waiting), problem)
        self.closing = True
        self.attempt_finished.set()
        await recorder
        await self._record_finished()  # what ended while the recorder was stopping
        for client in self.clients.values():
            await client.close()
        for thread in (self.claiming, self.recording):
            await asyncio.get_running_loop().run_in_executor(thread, _close_connection)
            thread.shutdown(wait=True)


def _with_fresh_connection(function, *args):
    # As Django does around each request: a connection broken by a database
    # restart is replaced instead of failing every later query.
    close_old_connections()
    return function(*args)


def _close_connection():
    connection.close()
