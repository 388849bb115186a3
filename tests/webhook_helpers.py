"""What the webhook tests share: endpoints and outbox messages made directly,
the receiver program and the delivery worker as real processes, and waiting
for what they do."""

import json
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

from conftest import CommandProcess, free_port
from django.utils import timezone

from detections.core.formats import format_time
from detections.models import WebhookEndpoint, WebhookEvent, WebhookMessage
from detections.webhooks import secrets

RECEIVER = Path(__file__).resolve().parent / "webhook_receiver.py"
ALL_EVENTS = list(WebhookEvent.values)

# The worker's settings in these tests: loopback allowed (every receiver is a
# process on 127.0.0.1), a short schedule and timeout so retries happen in seconds.
WORKER_ENV = {
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_RETRY_SCHEDULE": "0.2,0.5",
    "WEBHOOK_TIMEOUT_SECONDS": "2",
}


def eventually(check, *, timeout: float = 20.0, what: str = "the condition"):
    """Poll `check()` until it returns something true, and return that: what a
    separate process does sends this process nothing to await."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)
    return result


def make_endpoint(url: str, *, events=None, cameras=None, active=True) -> tuple[WebhookEndpoint, str]:
    """An endpoint as registration stores it, and its secret."""
    endpoint = WebhookEndpoint(url=url, events=events or ALL_EVENTS, cameras=cameras or [], active=active)
    secret = secrets.give_new_secret(endpoint)
    endpoint.save()
    return endpoint, secret


def make_message(
    endpoint: WebhookEndpoint,
    seq: int,
    *,
    event_type: str = WebhookEvent.DETECTION_CREATED,
    created_at: datetime | None = None,
    **fields,
) -> WebhookMessage:
    """An outbox row as the write path leaves it: pending, due at its creation."""
    created_at = created_at or timezone.now()
    body = json.dumps(
        {"type": event_type, "timestamp": format_time(created_at), "seq": seq, "data": {"id": seq, "camera": "gate-1"}},
        separators=(",", ":"),
    )
    return WebhookMessage.objects.create(
        endpoint=endpoint,
        message_id=f"msg_{uuid.uuid4().hex}",
        event_type=event_type,
        seq=seq,
        body=body,
        created_at=created_at,
        next_attempt_at=fields.pop("next_attempt_at", created_at),
        **fields,
    )


def status_of(message: WebhookMessage) -> str:
    message.refresh_from_db()
    return message.status


class ReceiverProcess:
    """tests/webhook_receiver.py in a process of its own on 127.0.0.1."""

    def __init__(self, record_dir: Path, script: str = "200", port: int | None = None):
        self.port = port or free_port()
        self.record_path = record_dir / f"receiver-{self.port}-{uuid.uuid4().hex[:6]}.jsonl"
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.process = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", str(self.port), "--record", str(self.record_path)]
            + ["--script", script],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        assert line.startswith("Listening on"), f"the receiver did not start: {line!r}"
        self.started_at = time.time()

    def entries(self) -> list[dict]:
        if not self.record_path.exists():
            return []
        lines = self.record_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def requests(self) -> list[dict]:
        return [entry for entry in self.entries() if entry["event"] == "request"]

    def wait_for_requests(self, count: int, timeout: float = 20.0) -> list[dict]:
        return eventually(
            lambda: (found := self.requests()) and len(found) >= count and found,
            timeout=timeout,
            what=f"{count} request(s) at the receiver on port {self.port}",
        )

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


class WorkerProcess(CommandProcess):
    """`manage.py deliver_webhooks` in a process of its own, on the test database."""

    command = "deliver_webhooks"
    ready = "Delivering webhooks"
    extra_env = WORKER_ENV
