"""Webhooks for the hooks rows: endpoints in vm_bench pointing to receiver.py, the
delivery worker (`manage.py deliver_webhooks`) as a process of its own, and what
arrived.

Endpoints are made with the ORM and `detections.webhooks.secrets.give_new_secret`
(what POST /api/webhooks/ does, without needing a staff user), so the worker
signs with secrets the receiver knows. The target URLs are on loopback, which the
worker refuses unless WEBHOOK_ALLOWED_NETWORKS lists it: database.bench_env sets
127.0.0.0/8 for the server and the worker alike.

Latency is the receiver's arrival time (wall clock) minus the message's
`WebhookMessage.created_at`, joined by webhook-id: see README.md (hooks-latency).
Needs Django set up in the calling process (load.make_pools does it).
"""

import json
import time
from datetime import datetime
from pathlib import Path

import psutil
from bench_processes import PYTHON, say, start_process, stop_process
from database import fresh_django_connection
from measures import pct

EVENTS = ["detection.created", "alert.triggered"]


class Webhooks:
    """`count` endpoints, the receiver and the worker, for one row."""

    def __init__(self, count: int, env: dict, workdir: Path, log_path: Path, gen_factory):
        from detections.alerts import config
        from detections.models import WebhookEndpoint
        from detections.webhooks import secrets

        fresh_django_connection()
        self.workdir = workdir
        self.worker = None
        secrets_path = workdir / "webhook-secrets.json"
        # The receiver first (its port goes into the URLs); secrets are written once made.
        self.endpoints, plain = [], {}
        for n in range(1, count + 1):
            endpoint = WebhookEndpoint(url="http://placeholder.invalid/", events=EVENTS, description=f"bench {n}")
            plain[str(n)] = secrets.give_new_secret(endpoint)
            self.endpoints.append(endpoint)
        secrets_path.write_text(json.dumps(plain))
        self.receiver = gen_factory(["--secrets", str(secrets_path)], "receiver.py")
        port = self.receiver.wait_for("ready", timeout=60)["port"]
        for n, endpoint in enumerate(self.endpoints, start=1):
            endpoint.url = f"http://127.0.0.1:{port}/hook/{n}"
            endpoint.save()  # its post_save bumps the configuration revision
        config.changed()
        self.worker = start_process([PYTHON, "manage.py", "deliver_webhooks"], env=env, log_path=log_path)
        say(f"{count} webhook endpoints -> 127.0.0.1:{port}; deliver_webhooks pid {self.worker.pid}")

    def processes(self, which: str) -> list[psutil.Process]:
        process = {"worker": self.worker, "receiver": getattr(self.receiver, "process", None)}[which]
        if process is None or process.poll() is not None:
            return []
        try:
            return [psutil.Process(process.pid)]
        except psutil.NoSuchProcess:
            return []

    def watermark(self) -> int:
        """The last message id so far: the row's messages come after it."""
        from django.db.models import Max

        from detections.models import WebhookMessage

        fresh_django_connection()
        return WebhookMessage.objects.aggregate(m=Max("id"))["m"] or 0

    def reset_receiver(self):
        self.receiver.send({"reset": True})
        self.receiver.wait_for("reset_done", timeout=30)

    def wait_delivered(self, after_id: int, timeout: float) -> dict:
        """Until every message after `after_id` is delivered (or failed), up to `timeout` s."""
        from django.db.models import Count

        from detections.models import WebhookMessage

        started = time.monotonic()
        while True:
            counts = dict(
                WebhookMessage.objects.filter(id__gt=after_id)
                .values_list("status")
                .annotate(n=Count("id"))
                .values_list("status", "n")
            )
            if not counts.get("pending") or time.monotonic() - started > timeout:
                return {"statuses": counts, "drain_seconds": time.monotonic() - started}
            time.sleep(0.25)

    def arrivals(self, after_id: int) -> dict:
        """What the receiver got for the messages after `after_id`: latency from the
        message's created_at and from the body's timestamp, duplicates, missing."""
        from detections.models import WebhookAttempt, WebhookMessage

        path = self.workdir / "receiver-dump.json"
        self.receiver.send({"dump": str(path)})
        self.receiver.wait_for("dumped", timeout=60)
        dump = json.loads(path.read_text())
        created = {
            message_id: at.timestamp()
            for message_id, at in WebhookMessage.objects.filter(id__gt=after_id).values_list("message_id", "created_at")
        }
        seen: dict[str, int] = {}
        from_row, from_body = [], []
        for _, message_id, arrived, stamp in dump["records"]:
            if message_id not in created:
                continue  # a message of before the row
            seen[message_id] = seen.get(message_id, 0) + 1
            if seen[message_id] > 1:
                continue
            from_row.append(1000 * (arrived - created[message_id]))
            if stamp:
                from_body.append(1000 * (arrived - datetime.fromisoformat(stamp).timestamp()))
        from_row.sort()
        from_body.sort()
        # Where the time goes, from the worker's own record: in the outbox until
        # the attempt starts, then the attempt itself (POST to answer).
        waited, took = [], []
        for created_at, attempted_at, latency_ms in WebhookAttempt.objects.filter(message_id__gt=after_id).values_list(
            "message__created_at", "attempted_at", "latency_ms"
        ):
            waited.append(1000 * (attempted_at - created_at).total_seconds())
            took.append(latency_ms)
        waited.sort()
        took.sort()
        return {
            "messages": len(created),
            "arrived": len(seen),
            "hook_missing": len(created) - len(seen),
            "hook_duplicates": sum(n - 1 for n in seen.values()),
            "delivery_p50": pct(from_row, 0.5),
            "delivery_p99": pct(from_row, 0.99),
            "delivery_max": from_row[-1] if from_row else None,
            "body_p50": pct(from_body, 0.5),
            "body_p99": pct(from_body, 0.99),
            "outbox_p50": pct(waited, 0.5),
            "outbox_p99": pct(waited, 0.99),
            "attempt_p50": pct(took, 0.5),
            "attempt_p99": pct(took, 0.99),
            "attempts": len(took),
            "verified": dump["verified"],
            "bad_signatures": dump["bad_signatures"],
        }

    def close(self):
        """Worker and receiver stopped; endpoints, messages and attempts gone, so the
        next rows write no messages."""
        from django.db import connection, transaction

        from detections.alerts import config
        from detections.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

        if self.worker is not None:
            stop_process(self.worker)
        self.receiver.stop()
        fresh_django_connection()
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Thousands of rows: plain statements, not Django's collector.
                for model in (WebhookAttempt, WebhookMessage):
                    cursor.execute(f"DELETE FROM {model._meta.db_table}")
            WebhookEndpoint.objects.all().delete()
            config.changed()
