"""Send the webhook outbox to the registered endpoints until stopped.

    .venv/bin/python manage.py deliver_webhooks                  # run (docker-compose.yml's `webhooks`)
    .venv/bin/python manage.py deliver_webhooks --once           # send what is due now, then exit
    .venv/bin/python manage.py deliver_webhooks --concurrency 8  # attempts at once per endpoint
    .venv/bin/python manage.py deliver_webhooks --nice 0         # the server's CPU priority (default: 10 below)

Run as many as you like, on as many hosts: they share the outbox without ever
sending one message twice at the same time (detections/webhooks/queue.py).
SIGTERM or Ctrl-C lets the attempts in flight finish and be recorded (each is
bounded by WEBHOOK_TIMEOUT_SECONDS); a second one abandons them, and they are
sent again once their claims run out.
"""

import asyncio
import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detections.webhooks import secrets, targets
from detections.webhooks.delivery import Worker

WORKER_NICENESS = 10


class Command(BaseCommand):
    help = "Deliver webhook messages to their endpoints (signed, retried, several workers may run at once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="send what is due now, wait for it, and exit")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.WEBHOOK_CONCURRENCY_PER_ENDPOINT,
            help="attempts at once to one endpoint (default WEBHOOK_CONCURRENCY_PER_ENDPOINT)",
        )
        parser.add_argument(
            "--nice",
            type=int,
            default=WORKER_NICENESS,
            help=f"CPU priority below the server's (default {WORKER_NICENESS}; 0 keeps the same)",
        )
        parser.add_argument(
            "--poll",
            type=float,
            default=settings.WEBHOOK_POLL_SECONDS,
            help="seconds between looks at the outbox while idle (default WEBHOOK_POLL_SECONDS)",
        )

    def handle(self, *args, **options):
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        if options["poll"] <= 0:
            raise CommandError("--poll must be above 0")
        if not 0 <= options["nice"] <= 19:
            raise CommandError("--nice must be from 0 to 19")
        # On a host it shares with the server, delivery takes the CPU that
        # ingest and the feed leave: a queue of messages may wait a moment
        # longer, a camera's POST never does.
        os.nice(options["nice"])
        # A configuration mistake stops the worker here, not at every attempt.
        secrets.fernet()
        targets.allowed_networks()
        worker = Worker(concurrency=options["concurrency"], poll_seconds=options["poll"])
        self.stdout.write(
            f"Delivering webhooks: {options['concurrency']} at once per endpoint, "
            f"looking every {options['poll']:g} s (SIGTERM or Ctrl-C stops)."
        )
        asyncio.run(self.run(worker, once=options["once"]))
        self.stdout.write("Stopped delivering webhooks.")

    async def run(self, worker: Worker, *, once: bool):
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, worker.stop)
        await worker.run(once=once)
