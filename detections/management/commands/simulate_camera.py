"""Play an edge camera unit: draw vehicle snapshots and POST them over HTTP.

    python manage.py simulate_camera --url http://127.0.0.1:8000 --rate 1
"""

import json
import random
import time
import urllib.error
import urllib.request

from django.core.management.base import BaseCommand, CommandError

from detections.simulator import make_detection


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

    def handle(self, *args, **options):
        if options["rate"] <= 0:
            raise CommandError("--rate must be above 0")
        rng = random.Random(options["seed"])
        cameras = options["cameras"] or ["gate-1"]
        endpoint = options["url"].rstrip("/") + "/api/detect"
        interval = 1.0 / options["rate"]
        run_id = f"{rng.getrandbits(24):06x}"
        self.stdout.write(f"Simulated camera posting to {endpoint} at {options['rate']:g}/s (Ctrl-C stops)")
        sent = stored = failed = 0
        next_at = time.monotonic()
        try:
            while not options["count"] or sent < options["count"]:
                sent += 1
                detection = make_detection(sequence=sent, camera=cameras[(sent - 1) % len(cameras)], rng=rng)
                detection["id"] = f"sim-{run_id}-{sent:06d}"
                outcome, ok = self.post(endpoint, detection, options)
                stored += ok
                failed += not ok
                self.stdout.write(
                    f"{sent:6d}  {detection['camera']:<10} {detection['vehicle_type']:<10} "
                    f"{detection['plate'] or '-':<9} {outcome}"
                )
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"Sent {sent}, stored {stored}, failed {failed}.")
        if failed and not stored:
            raise CommandError("no detection was stored; is the server running at --url?")

    def post(self, endpoint: str, detection: dict, options) -> tuple[str, bool]:
        headers = {"Content-Type": "application/json"}
        if options["token"]:
            headers["Authorization"] = f"Token {options['token']}"
        request = urllib.request.Request(endpoint, data=json.dumps(detection).encode(), headers=headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=options["timeout"]) as response:
                body = json.loads(response.read())
                status = response.status
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:200]
            return self.style.ERROR(f"HTTP {error.code} {detail}"), False
        except (urllib.error.URLError, OSError) as error:
            return self.style.ERROR(f"unreachable ({getattr(error, 'reason', error)})"), False
        elapsed = (time.monotonic() - started) * 1000
        word = "stored" if status == 201 else "already stored"
        return self.style.SUCCESS(f"{status} {word} as #{body.get('id')}") + f"  {elapsed:.0f} ms", True
