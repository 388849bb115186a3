"""The delivery worker, as it runs: `manage.py deliver_webhooks` in real
processes sending the outbox of the real database to real receivers
(tests/webhook_receiver.py) on 127.0.0.1, signed, retried, claimed by one
worker at a time, and never lost when a worker dies.

The worker runs with a short retry schedule (0.2 s, then 0.5 s) and timeout
(2 s) and loopback allowed (tests/webhook_helpers.py, WORKER_ENV).
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook
from webhook_helpers import (
    ReceiverProcess,
    WorkerProcess,
    eventually,
    make_endpoint,
    make_message,
    status_of,
)

from detections.models import MessageStatus, WebhookEndpoint

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def receivers(tmp_path):
    """Start receivers with receivers(script); all are stopped after the test."""
    started = []

    def start(script="200", port=None):
        receiver = ReceiverProcess(tmp_path, script, port=port)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def attempts_of(message) -> list[tuple[int | None, str]]:
    return [(attempt.status_code, attempt.error) for attempt in message.attempts.order_by("id")]


def test_a_receiver_failing_twice_gets_the_message_three_times_with_one_id_each_signed_at_its_attempt(receivers):
    receiver = receivers("500,500,200")
    endpoint, secret = make_endpoint(receiver.url)
    # Created two hours ago and first tried an hour ago: an attempt made now
    # must still verify within a receiver's five minutes of tolerance.
    created_at = timezone.now() - timedelta(hours=2)
    message = make_message(endpoint, 41, created_at=created_at, first_attempt_at=created_at + timedelta(hours=1))

    with WorkerProcess():
        requests = receiver.wait_for_requests(3)
        eventually(lambda: status_of(message) == MessageStatus.DELIVERED, what="the message delivered")

    assert len(requests) == 3
    assert {r["headers"]["webhook-id"] for r in requests} == {message.message_id}
    for request in requests:
        assert request["body"] == message.body  # byte for byte, every time
        assert request["headers"]["content-type"] == "application/json"
        assert Webhook(secret).verify(request["body"], request["headers"])["seq"] == 41
        # Taken at the attempt, not at the message's creation.
        assert abs(int(request["headers"]["webhook-timestamp"]) - request["at"]) <= 2
    timestamps = [int(r["headers"]["webhook-timestamp"]) for r in requests]
    assert timestamps == sorted(timestamps) and timestamps[0] > created_at.timestamp() + 3600
    # The schedule's waits (0.2 s, 0.5 s), never shortened by more than the jitter.
    gaps = [later["at"] - earlier["at"] for earlier, later in zip(requests, requests[1:], strict=False)]
    assert gaps[0] >= 0.2 * 0.9 - 0.01 and gaps[1] >= 0.5 * 0.9 - 0.01
    message.refresh_from_db()
    assert attempts_of(message) == [(500, ""), (500, ""), (200, "")]
    assert message.attempt_count == 3 and message.delivered_at is not None and message.claimed_until is None


def test_a_receiver_that_hangs_is_timed_out_and_the_message_retried(receivers):
    receiver = receivers("hang,200")
    endpoint, _ = make_endpoint(receiver.url)
    message = make_message(endpoint, 1)

    with WorkerProcess(env={"WEBHOOK_TIMEOUT_SECONDS": "1"}):
        eventually(lambda: status_of(message) == MessageStatus.DELIVERED, what="the message delivered")

    assert attempts_of(message) == [(None, "no answer within 1 s"), (200, "")]
    assert [r["headers"]["webhook-id"] for r in receiver.requests()] == [message.message_id] * 2


def test_a_410_turns_the_endpoint_off_and_keeps_its_pending_messages_as_failed(receivers):
    gone, other = receivers("410"), receivers("200")
    endpoint, _ = make_endpoint(gone.url)
    sent = make_message(endpoint, 1)
    # Not due yet when the 410 comes: it is never sent.
    waiting = make_message(endpoint, 2, next_attempt_at=timezone.now() + timedelta(hours=1))
    other_endpoint, _ = make_endpoint(other.url)

    with WorkerProcess():
        eventually(lambda: status_of(sent) == MessageStatus.FAILED, what="the message failed")
        make_message(other_endpoint, 3)
        other.wait_for_requests(1)

    endpoint.refresh_from_db()
    assert not endpoint.active and "410" in endpoint.disabled_reason
    assert status_of(waiting) == MessageStatus.FAILED
    assert len(gone.requests()) == 1
    assert WebhookEndpoint.objects.get(pk=other_endpoint.pk).active


def test_garbage_and_a_closed_connection_are_failed_attempts_and_the_worker_carries_on(receivers):
    receiver = receivers("garbage,close,200")
    endpoint, _ = make_endpoint(receiver.url)
    message = make_message(endpoint, 1)

    with WorkerProcess() as worker:
        eventually(lambda: status_of(message) == MessageStatus.DELIVERED, what="the message delivered")
        assert worker.alive

    (garbage, _), (closed, _), delivered = attempts_of(message)
    assert garbage is None and closed is None and delivered == (200, "")
    assert all(error for _, error in attempts_of(message)[:2])
    assert "Traceback" not in worker.text()


def test_redirects_are_not_followed(receivers):
    elsewhere = receivers("200")
    redirecting = receivers(f"302={elsewhere.url}")
    endpoint, _ = make_endpoint(redirecting.url)
    message = make_message(endpoint, 1)

    with WorkerProcess():
        redirecting.wait_for_requests(2)  # the first attempt, and a retry
        eventually(lambda: message.attempts.count() >= 2, what="two attempts recorded")

    assert elsewhere.requests() == []
    assert attempts_of(message)[:2] == [(302, ""), (302, "")]
    assert status_of(message) == MessageStatus.PENDING


def test_a_loopback_target_is_refused_at_delivery_unless_allowed_and_nothing_is_sent(receivers):
    receiver = receivers("200")
    endpoint, _ = make_endpoint(receiver.url)  # registered while loopback was allowed
    message = make_message(endpoint, 1)

    with WorkerProcess(env={"WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8"}):
        eventually(lambda: message.attempts.exists(), what="an attempt recorded")

    (status_code, error), *_ = attempts_of(message)
    assert status_code is None and error.startswith("refused: 127.0.0.1 is not a public address (loopback)")
    assert receiver.requests() == []


def test_a_worker_killed_mid_delivery_loses_nothing_the_next_one_sends_it_again_with_its_id(receivers):
    receiver = receivers("hang,200")
    endpoint, secret = make_endpoint(receiver.url)
    message = make_message(endpoint, 1)

    with WorkerProcess() as first:
        receiver.wait_for_requests(1)  # held open by the receiver
        first.kill()
    assert status_of(message) == MessageStatus.PENDING
    with WorkerProcess():
        # Once the dead worker's claim has run out (twice the 2 s timeout, and a second).
        eventually(lambda: status_of(message) == MessageStatus.DELIVERED, what="the message delivered")

    requests = receiver.requests()
    assert [r["headers"]["webhook-id"] for r in requests] == [message.message_id] * 2
    assert Webhook(secret).verify(requests[1]["body"], requests[1]["headers"])
    assert attempts_of(message) == [(200, "")]  # the killed worker recorded nothing


def test_two_workers_never_send_one_message_at_the_same_time(receivers):
    receiver = receivers("slow=0.05")
    endpoint, _ = make_endpoint(receiver.url)
    messages = [make_message(endpoint, seq) for seq in range(1, 41)]

    with WorkerProcess(), WorkerProcess():
        requests = receiver.wait_for_requests(40)
        eventually(
            lambda: all(status_of(m) == MessageStatus.DELIVERED for m in messages), what="every message delivered"
        )

    assert not any(r["overlap"] for r in receiver.requests())
    # And, each answered 200 at once, none was sent twice at all.
    assert sorted(r["headers"]["webhook-id"] for r in requests) == sorted(m.message_id for m in messages)


def test_a_receiver_down_for_a_while_gets_every_message_within_a_step_of_coming_up(receivers):
    down = receivers("200")
    port = down.port
    down.stop()  # nothing listens on its port now
    endpoint, _ = make_endpoint(f"http://127.0.0.1:{port}/hook")
    messages = [make_message(endpoint, seq) for seq in range(1, 6)]

    with WorkerProcess():
        eventually(
            lambda: all(m.attempts.count() >= 3 for m in messages), what="three refused attempts of each message"
        )
        receiver = receivers("200", port=port)
        requests = receiver.wait_for_requests(5)
        eventually(
            lambda: all(status_of(m) == MessageStatus.DELIVERED for m in messages), what="every message delivered"
        )

    # The schedule's last step (0.5 s, with jitter) after the receiver came up,
    # and a generous margin for a busy machine.
    assert max(r["at"] for r in requests) - receiver.started_at < 0.55 + 2
    assert sorted(r["headers"]["webhook-id"] for r in requests) == sorted(m.message_id for m in messages)
    for message in messages:
        *refused, delivered = attempts_of(message)
        assert delivered == (200, "") and all(
            code is None and "ClientConnectorError" in error for code, error in refused
        )


def test_an_endpoint_that_hangs_does_not_delay_another(receivers):
    hanging, prompt = receivers("hang"), receivers("200")
    stuck, _ = make_endpoint(hanging.url)
    fine, _ = make_endpoint(prompt.url)
    for seq in range(1, 9):
        make_message(stuck, seq)

    with WorkerProcess(env={"WEBHOOK_TIMEOUT_SECONDS": "10"}):
        hanging.wait_for_requests(4)  # every one of its slots is held
        created = [make_message(fine, seq) for seq in range(100, 105)]
        requests = prompt.wait_for_requests(5)
        assert len(hanging.requests()) == 4  # its other messages wait for its own slots

    for request in requests:
        message = next(m for m in created if m.message_id == request["headers"]["webhook-id"])
        assert request["at"] - message.created_at.timestamp() < 2


def test_messages_to_one_endpoint_go_in_order_one_at_a_time_with_one_slot(receivers):
    receiver = receivers("200")
    endpoint, _ = make_endpoint(receiver.url)
    messages = [make_message(endpoint, seq) for seq in range(1, 11)]

    with WorkerProcess("--concurrency", "1"):
        requests = receiver.wait_for_requests(10)

    assert [r["headers"]["webhook-id"] for r in requests] == [m.message_id for m in messages]


def test_a_retry_after_answer_holds_the_retry_back(receivers):
    receiver = receivers("503+retry-after=2,200")
    endpoint, _ = make_endpoint(receiver.url)
    make_message(endpoint, 1)

    with WorkerProcess():
        first, second = receiver.wait_for_requests(2)

    assert second["at"] - first["at"] >= 2 - 0.05  # not the schedule's 0.2 s


def test_sigterm_lets_the_attempt_in_flight_finish_and_be_recorded(receivers):
    receiver = receivers("slow=1")
    endpoint, _ = make_endpoint(receiver.url)
    message = make_message(endpoint, 1)

    with WorkerProcess() as worker:
        receiver.wait_for_requests(1)
        assert worker.terminate() == 0

    assert status_of(message) == MessageStatus.DELIVERED
    assert worker.text().rstrip().endswith("Stopped delivering webhooks.")


def test_once_sends_what_is_due_and_exits_and_a_resent_message_goes_again_with_its_id(receivers):
    from detections.webhooks import queue

    receiver = receivers("200")
    endpoint, _ = make_endpoint(receiver.url)
    message = make_message(endpoint, 1)

    with WorkerProcess("--once") as worker:
        assert worker.wait() == 0
    assert status_of(message) == MessageStatus.DELIVERED
    queue.resend(message)
    with WorkerProcess("--once") as worker:
        assert worker.wait() == 0

    assert [r["headers"]["webhook-id"] for r in receiver.requests()] == [message.message_id] * 2
    assert status_of(message) == MessageStatus.DELIVERED


def test_an_inactive_endpoint_gets_nothing(receivers):
    receiver = receivers("200")
    off, _ = make_endpoint(receiver.url, active=False)
    held = make_message(off, 1)

    with WorkerProcess("--once") as worker:
        assert worker.wait() == 0

    assert receiver.requests() == [] and status_of(held) == MessageStatus.PENDING


def test_a_message_whose_endpoint_was_deleted_meanwhile_is_dropped(receivers):
    receiver = receivers("200")
    endpoint, _ = make_endpoint(receiver.url)
    kept = make_message(endpoint, 1)
    doomed, _ = make_endpoint(receiver.url)
    orphan = make_message(doomed, 2)
    # As a process writing from its snapshot of the endpoints leaves it: the
    # endpoint row is gone, its message not.
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {WebhookEndpoint._meta.db_table} WHERE id = %s", [doomed.pk])

    with WorkerProcess("--once") as worker:
        assert worker.wait() == 0

    assert not type(orphan).objects.filter(pk=orphan.pk).exists()
    assert status_of(kept) == MessageStatus.DELIVERED
    assert [r["headers"]["webhook-id"] for r in receiver.requests()] == [kept.message_id]
