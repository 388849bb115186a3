"""Keep every site's visits up to date with its reads, until stopped.

    .venv/bin/python manage.py follow_visits           # run (docker-compose.yml's `visits`)
    .venv/bin/python manage.py follow_visits --once    # catch up with the log and the timers, then exit

Several may run, on several hosts: one at a time takes each step of the log,
and the overstay, expiry and capacity events are each raised once
(detections/sites/). SIGTERM or Ctrl-C stops after the round under way; a
process killed mid-round leaves nothing half done.
"""

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from detections.sites.runner import Runner


class Command(BaseCommand):
    help = "Derive visits from the sites' reads and raise overstay and capacity events (several may run)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="catch up with the log and the timers, then exit")
        parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks while idle (default 0.5)")

    def handle(self, *args, **options):
        if options["poll"] <= 0:
            raise CommandError("--poll must be above 0")
        runner = Runner(poll_seconds=options["poll"])
        self.stdout.write(
            f"Following the log for visits, looking every {options['poll']:g} s (SIGTERM or Ctrl-C stops)."
        )
        self.stdout.flush()
        asyncio.run(self.run(runner, once=options["once"]))
        self.stdout.write("Stopped following visits.")

    async def run(self, runner: Runner, *, once: bool):
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, runner.stop)
        await runner.run(once=once)
