"""`manage.py demo_setup`: what `make demo` needs before it starts the server.

The admin login (admin / admin, made once), a viewer token for the API and the
socket, a car park (the site DEMO_SITE, its entry and exit cameras, made once)
for the simulated site, a road (the route DEMO_ROUTE along DEMO_ROAD, made once)
for the simulated corridor with four weeks of its past (made with it), and a device key for the simulated cameras: a new one
each run, the previous demo key revoked. The token and the key are printed as
VIEWER_TOKEN=... and DEVICE_KEY=... lines for scripts/demo.sh to read; nothing
secret is written to disk.
"""

import random
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone
from rest_framework.authtoken.models import Token

from detections.core.device_keys import issue_device_key, revoke_device_keys
from detections.core.writes import NewDetection, detections_create
from detections.journeys import engine
from detections.models import Camera, DeviceKey, Route
from detections.simulation.corridor import CorridorTraffic, weeks_before
from detections.sites import edits
from detections.sites.models import Site

DEMO_KEY_LABEL = "make demo"
# The car park scripts/demo.sh's site simulator plays: small and quick, so that
# it fills, empties and has overstays within the demo's first minutes.
DEMO_SITE = "Car park"
DEMO_ENTRY, DEMO_EXIT = "gate-in", "gate-out"
DEMO_CAPACITY = 25
DEMO_MAX_STAY_SECONDS = 180
# The road scripts/demo.sh's corridor simulator plays (--spacing 500): a journey
# from its first camera to its last within the demo's first minute or two.
DEMO_ROUTE = "Road north"
DEMO_ROAD = ("road-1", "road-2", "road-3")
DEMO_ROAD_SPACING_M = 500
DEMO_ROAD_SPEED_KMH = 60  # scripts/demo.sh's --speed
# The road's past, so that the routes view shows the usual for this hour from the
# first minute: a vehicle every two minutes (a few thousand reads, no snapshots)
# over a day from an hour before now, on the same weekday in each of 4 weeks before.
DEMO_HISTORY_WEEKS = 4
DEMO_HISTORY_VEHICLES_PER_SECOND = 1 / 120


class Command(BaseCommand):
    help = "Make the demo's admin login, viewer token and device key (used by make demo)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-road-history", action="store_true", help="make the route without the road's past weeks"
        )

    def handle(self, *args, **options):
        users = get_user_model()
        admin = users.objects.filter(username="admin").first()
        if admin:
            self.stdout.write("==> superuser admin exists (password admin unless you changed it)")
        else:
            admin = users.objects.create_superuser("admin", "admin@example.com", "admin")
            self.stdout.write("==> created superuser admin (password admin)")
        self.stdout.write("VIEWER_TOKEN=" + Token.objects.get_or_create(user=admin)[0].key)
        revoke_device_keys(DeviceKey.objects.filter(label=DEMO_KEY_LABEL))
        names = ("gate-1", DEMO_ENTRY, DEMO_EXIT, *DEMO_ROAD)
        cameras = [Camera.objects.get_or_create(name=name)[0] for name in names]
        if not Site.objects.filter(name=DEMO_SITE).exists():
            edits.site_create(
                name=DEMO_SITE,
                capacity=DEMO_CAPACITY,
                max_stay_seconds=DEMO_MAX_STAY_SECONDS,
                cameras=[edits.CameraRole(cameras[1], "entry"), edits.CameraRole(cameras[2], "exit")],
            )
            self.stdout.write(f"==> created site {DEMO_SITE!r}: {DEMO_ENTRY} in, {DEMO_EXIT} out")
        if not Route.objects.filter(name=DEMO_ROUTE).exists():
            since = None
            # Only before the journey engine's first start, which takes every read
            # stored by then and derives the new route from them silently; a running
            # engine would pair them too, but as news, an event for each old journey.
            if not options["no_road_history"] and engine.FOLLOWER.position() is None:
                since, count = write_road_history(cameras[3:], timezone.now())
                self.stdout.write(f"==> wrote {count} reads of the road's past {DEMO_HISTORY_WEEKS} weeks")
            Route.objects.create(
                name=DEMO_ROUTE,
                from_camera=cameras[3],
                to_camera=cameras[-1],
                distance_m=DEMO_ROAD_SPACING_M * (len(DEMO_ROAD) - 1),
                speed_limit_kmh=80,
                since=since,
            )
            self.stdout.write(f"==> created route {DEMO_ROUTE!r}: {DEMO_ROAD[0]} to {DEMO_ROAD[-1]}")
        key, secret = issue_device_key(cameras=cameras, label=DEMO_KEY_LABEL)
        names = ", ".join(camera.name for camera in cameras)
        self.stdout.write(f'==> issued device key {key.prefix}... for cameras {names} (label "{DEMO_KEY_LABEL}")')
        self.stdout.write("DEVICE_KEY=" + secret)


def write_road_history(road: list[Camera], now: datetime) -> tuple[datetime, int]:
    """The demo road's reads in the weeks before `now`, as scripts/demo.sh's
    corridor plays it, stored as detections; the first read's time and how many."""

    def traffic_at(start: datetime) -> CorridorTraffic:
        return CorridorTraffic(
            rng,
            start=start.astimezone(),  # the slowdown hour, if any, is this machine's local hour
            cameras=[camera.name for camera in road],
            spacing_m=DEMO_ROAD_SPACING_M,
            arrivals_per_second=DEMO_HISTORY_VEHICLES_PER_SECOND,
            speed_kmh=DEMO_ROAD_SPEED_KMH,
        )

    rng = random.Random(1)
    by_name = {camera.name: camera for camera in road}
    played = weeks_before(traffic_at, now, weeks=DEMO_HISTORY_WEEKS)
    items = [
        NewDetection(
            camera=by_name[read.camera],
            tracking_id=f"history-{n}",
            vehicle_type=read.vehicle_type,
            detected_at=at,
            plate=read.plate,
        )
        for n, (at, read) in enumerate(played)
    ]
    for first in range(0, len(items), 500):
        detections_create(items[first : first + 500])
    return min(at for at, _ in played), len(items)
