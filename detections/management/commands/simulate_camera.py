"""Play an edge camera unit: draw vehicle snapshots and POST them over HTTP.

    .venv/bin/python manage.py simulate_camera --url http://127.0.0.1:8000 --rate 1 --spool var/spool
    .venv/bin/python manage.py simulate_camera --site --rate 0.2 --stay 300    # a car park's entry and exit

With --site it plays a car park (detections/simulation/site.py) instead of one
camera: vehicles arrive at --rate a second past --entry-camera, stay around
--stay seconds and leave past --exit-camera, with unread exits, double reads
and misreads, as site visits are made of (docs/sites.md).

With --corridor it plays a road (detections/simulation/corridor.py): the --camera
cameras in order along it, --spacing metres apart, vehicles at --rate a second
driving around --speed km/h, everything slower during --slowdown-hour, as
journeys are made of (docs/journeys.md).

With --spool, detections the server could not take (unreachable, 5xx, 429)
wait on disk and are delivered with batch ingest once it answers again, the
way a real unit rides out a network outage.
"""

import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from detections.simulation.camera import OfflineSpool, make_detection
from detections.simulation.corridor import CorridorTraffic
from detections.simulation.site import SiteTraffic

BATCH_SIZE = 100
# In --site and --corridor modes, how often the simulation looks for reads that are due.
SITE_TICK_SECONDS = 0.25


@dataclass
class Answer:
    status: int | None  # None: the server could not be reached
    body: dict | str

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class Command(BaseCommand):
    help = "Simulate an edge camera unit posting detections to a running server."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the server")
        parser.add_argument("--rate", type=float, default=1.0, help="detections per second (default 1)")
        parser.add_argument("--count", type=int, default=0, help="stop after this many (default: run until stopped)")
        parser.add_argument(
            "--camera", action="append", dest="cameras", help="camera name; repeat for several (default gate-1)"
        )
        parser.add_argument("--token", default="", help="device key, sent as 'Authorization: Token <key>'")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable runs")
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each POST")
        parser.add_argument(
            "--spool", default="", help="folder that keeps undelivered detections until the server is back"
        )
        parser.add_argument("--flush-only", action="store_true", help="deliver what waits in --spool, then stop")
        parser.add_argument(
            "--site", action="store_true", help="play a car park's entry and exit cameras; --rate is arrivals a second"
        )
        parser.add_argument("--entry-camera", default="gate-in", help="--site: the entry camera (default gate-in)")
        parser.add_argument("--exit-camera", default="gate-out", help="--site: the exit camera (default gate-out)")
        parser.add_argument("--stay", type=float, default=300.0, help="--site: median stay in seconds (default 300)")
        parser.add_argument(
            "--capacity", type=int, default=None, help="--site: vehicles that fit; arrivals drive on when full"
        )
        parser.add_argument(
            "--corridor", action="store_true", help="play a road past the --camera cameras; --rate is vehicles a second"
        )
        parser.add_argument("--spacing", type=float, default=1000.0, help="--corridor: metres between cameras")
        parser.add_argument("--speed", type=float, default=60.0, help="--corridor: typical speed in km/h")
        parser.add_argument(
            "--slowdown-hour", type=int, default=None, help="--corridor: the local hour (0-23) the road slows down"
        )
        parser.add_argument(
            "--slowdown-factor", type=float, default=3.0, help="--corridor: how many times longer it takes then"
        )

    def handle(self, *args, **options):
        if options["rate"] <= 0:
            raise CommandError("--rate must be above 0")
        if options["flush_only"] and not options["spool"]:
            raise CommandError("--flush-only needs --spool")
        if options["stay"] <= 0:
            raise CommandError("--stay must be above 0")
        if options["capacity"] is not None and options["capacity"] < 1:
            raise CommandError("--capacity must be at least 1")
        if options["site"] and options["corridor"]:
            raise CommandError("--site and --corridor are two simulations; run one each")
        if options["spacing"] <= 0 or options["speed"] <= 0 or options["slowdown_factor"] < 1:
            raise CommandError("--spacing and --speed must be above 0, --slowdown-factor at least 1")
        if options["slowdown_hour"] is not None and not 0 <= options["slowdown_hour"] <= 23:
            raise CommandError("--slowdown-hour must be 0-23")
        if options["corridor"] and len(options["cameras"] or ["road-1", "road-2"]) < 2:
            raise CommandError("--corridor needs two --camera or more (default road-1, road-2, road-3)")
        self.options = options
        self.base_url = options["url"].rstrip("/")
        spool = OfflineSpool(options["spool"]) if options["spool"] else None
        rng = random.Random(options["seed"])
        cameras = options["cameras"] or ["gate-1"]
        run_id = f"{rng.getrandbits(24):06x}"
        interval = 1.0 / options["rate"]
        self.stdout.write(
            f"Simulated camera posting to {self.base_url}/api/detect at {options['rate']:g}/s (Ctrl-C stops)"
        )
        self.sent = self.stored = self.failed = 0
        # Ctrl-C lets the POST in flight finish (it is bounded by --timeout), so
        # a detection is never half-delivered and nothing prints a traceback.
        stopped = threading.Event()
        interrupt_handler = signal.signal(signal.SIGINT, lambda *_: stopped.set())
        try:
            next_at = time.monotonic()
            if spool:
                self.flush(spool)
            if options["site"]:
                self.play(self.site_traffic(rng), rng, run_id, spool, stopped)
            elif options["corridor"]:
                self.play(self.corridor_traffic(rng), rng, run_id, spool, stopped)
            else:
                while self.more(stopped):
                    self.sent += 1
                    camera = cameras[(self.sent - 1) % len(cameras)]
                    detection = make_detection(sequence=self.sent, camera=camera, rng=rng)
                    detection["id"] = f"sim-{run_id}-{self.sent:06d}"
                    self.deliver(detection, spool)
                    next_at += interval
                    stopped.wait(max(0.0, next_at - time.monotonic()))
        finally:
            signal.signal(signal.SIGINT, interrupt_handler)
        if stopped.is_set():
            self.stdout.write("Stopped by Ctrl-C.")
        waiting = len(spool.pending()) if spool else 0
        self.stdout.write(
            f"Sent {self.sent}, stored {self.stored}, failed {self.failed}, waiting in the spool {waiting}."
        )
        if self.failed and not self.stored and not waiting:
            raise CommandError("no detection was stored; is the server running at --url?")

    def more(self, stopped: threading.Event) -> bool:
        options = self.options
        return (
            not stopped.is_set()
            and not options["flush_only"]
            and (not options["count"] or self.sent < options["count"])
        )

    def site_traffic(self, rng: random.Random) -> SiteTraffic:
        options = self.options
        return SiteTraffic(
            rng,
            entry_camera=options["entry_camera"],
            exit_camera=options["exit_camera"],
            arrivals_per_second=options["rate"],
            stay_median_seconds=options["stay"],
            capacity=options["capacity"],
        )

    def corridor_traffic(self, rng: random.Random) -> CorridorTraffic:
        options = self.options
        return CorridorTraffic(
            rng,
            start=datetime.now().astimezone(),  # the slowdown hour is this machine's local hour
            cameras=options["cameras"] or ["road-1", "road-2", "road-3"],
            spacing_m=options["spacing"],
            arrivals_per_second=options["rate"],
            speed_kmh=options["speed"],
            slowdown_hour=options["slowdown_hour"],
            slowdown_factor=options["slowdown_factor"],
        )

    def play(self, traffic, rng: random.Random, run_id: str, spool: OfflineSpool | None, stopped: threading.Event):
        """A simulation in real time: each of its reads is posted when it is due."""
        started = time.monotonic()
        while self.more(stopped):
            for read in traffic.reads_until(time.monotonic() - started):
                if not self.more(stopped):
                    return
                self.sent += 1
                detection = make_detection(
                    sequence=self.sent, camera=read.camera, rng=rng, vehicle=(read.vehicle_type, read.plate)
                )
                detection["id"] = f"sim-{run_id}-{self.sent:06d}"
                self.deliver(detection, spool)
            stopped.wait(SITE_TICK_SECONDS)

    def deliver(self, detection: dict, spool: OfflineSpool | None):
        if spool and spool.pending():
            self.flush(spool)
        started = time.monotonic()
        answer = self.post("/api/detect", detection)
        elapsed = (time.monotonic() - started) * 1000
        line = (
            f"{self.sent:6d}  {detection['camera']:<10} {detection['vehicle_type']:<10} {detection['plate'] or '-':<9} "
        )
        if answer.status in (200, 201):
            self.stored += 1
            word = "stored" if answer.status == 201 else "already stored"
            self.stdout.write(
                line + self.style.SUCCESS(f"{answer.status} {word} as #{answer.body.get('id')}") + f"  {elapsed:.0f} ms"
            )
        elif answer.retryable and spool:
            spool.add(detection)
            self.stdout.write(line + self.style.WARNING(f"{self.describe(answer)}; spooled"))
        else:
            self.failed += 1
            self.stdout.write(line + self.style.ERROR(self.describe(answer)))

    def flush(self, spool: OfflineSpool):
        """Deliver spooled detections with batch ingest; keep what did not land."""
        pending = spool.pending()
        while pending:
            batch, rest = pending[:BATCH_SIZE], pending[BATCH_SIZE:]
            answer = self.post("/api/detections/batch/", {"detections": batch})
            if answer.status != 200:
                self.stdout.write(self.style.WARNING(f"spool: {len(pending)} waiting ({self.describe(answer)})"))
                return
            for result in answer.body["results"]:
                if result["status"] == "error":
                    self.failed += 1
                    self.stdout.write(
                        self.style.ERROR(f"spool: refused {batch[result['index']]['id']}: {result['detail']}")
                    )
                else:
                    self.stored += 1
            pending = rest
            spool.replace(pending)
            self.stdout.write(
                f"spool: delivered {answer.body['created']} new, {answer.body['duplicate']} already stored; {len(pending)} waiting"
            )

    def post(self, path: str, payload: dict) -> Answer:
        headers = {"Content-Type": "application/json"}
        if self.options["token"]:
            headers["Authorization"] = f"Token {self.options['token']}"
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.options["timeout"]) as response:
                return Answer(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read().decode("utf-8", "replace")[:200])
        except (urllib.error.URLError, OSError) as error:
            return Answer(None, str(getattr(error, "reason", error)))

    @staticmethod
    def describe(answer: Answer) -> str:
        return f"unreachable ({answer.body})" if answer.status is None else f"HTTP {answer.status} {answer.body}"
