"""Run the journey engine until stopped: plate reads, their transitions, the
routes' journeys and the journey events, from the event log.

    .venv/bin/python manage.py follow_journeys          # run (docker-compose.yml's `journeys`)
    .venv/bin/python manage.py follow_journeys --once   # catch up with the log, then exit
    .venv/bin/python manage.py follow_journeys --nice 0 # the server's CPU priority (default: 10 below)

Several may run at once, on several hosts: one steps at a time (the
follower's cursor is locked for a step), and another takes over when one
dies. SIGTERM or Ctrl-C stops it after the step in progress.
"""

import asyncio
import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detections.journeys.worker import Runner

NICENESS = 10


class Command(BaseCommand):
    help = "Derive plate reads, transitions and journeys from the event log (several may run at once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="catch up with the log, then exit")
        parser.add_argument(
            "--poll",
            type=float,
            default=settings.JOURNEY_POLL_SECONDS,
            help="seconds between looks at the log and the routes while idle (default JOURNEY_POLL_SECONDS)",
        )
        parser.add_argument(
            "--nice", type=int, default=NICENESS, help=f"CPU priority below the server's (default {NICENESS})"
        )

    def handle(self, *args, **options):
        if options["poll"] <= 0:
            raise CommandError("--poll must be above 0")
        if not 0 <= options["nice"] <= 19:
            raise CommandError("--nice must be from 0 to 19")
        # On a host it shares with the server, the engine takes the CPU that
        # ingest and the feed leave: journeys may come a moment later, a
        # camera's POST never waits.
        os.nice(options["nice"])
        runner = Runner(poll_seconds=options["poll"])
        self.stdout.write(f"Following the log for journeys, looking every {options['poll']:g} s when idle.")
        asyncio.run(self.run(runner, once=options["once"]))
        self.stdout.write("Stopped following the log for journeys.")

    async def run(self, runner: Runner, *, once: bool):
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, runner.stop)
        await runner.run(once=once)
