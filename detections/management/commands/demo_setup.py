"""`manage.py demo_setup`: what `make demo` needs before it starts the server.

The admin login (admin / admin, made once), a viewer token for the API and the
socket, a car park (the site DEMO_SITE, its entry and exit cameras, made once)
for the simulated site, a road (the route DEMO_ROUTE along DEMO_ROAD, made once)
for the simulated corridor, and a device key for the simulated cameras: a new one
each run, the previous demo key revoked. The token and the key are printed as
VIEWER_TOKEN=... and DEVICE_KEY=... lines for scripts/demo.sh to read; nothing
secret is written to disk.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from detections.core.device_keys import issue_device_key, revoke_device_keys
from detections.models import Camera, DeviceKey, Route
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


class Command(BaseCommand):
    help = "Make the demo's admin login, viewer token and device key (used by make demo)."

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
            Route.objects.create(
                name=DEMO_ROUTE,
                from_camera=cameras[3],
                to_camera=cameras[-1],
                distance_m=DEMO_ROAD_SPACING_M * (len(DEMO_ROAD) - 1),
                speed_limit_kmh=80,
            )
            self.stdout.write(f"==> created route {DEMO_ROUTE!r}: {DEMO_ROAD[0]} to {DEMO_ROAD[-1]}")
        key, secret = issue_device_key(cameras=cameras, label=DEMO_KEY_LABEL)
        names = ", ".join(camera.name for camera in cameras)
        self.stdout.write(f'==> issued device key {key.prefix}... for cameras {names} (label "{DEMO_KEY_LABEL}")')
        self.stdout.write("DEVICE_KEY=" + secret)
