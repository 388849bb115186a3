"""`manage.py demo_setup`: what `make demo` needs before it starts the server.

The admin login (admin / admin, made once), a viewer token for the API and the
socket, and a device key for the simulated camera: a new one each run, the
previous demo key revoked. The token and the key are printed as
VIEWER_TOKEN=... and DEVICE_KEY=... lines for scripts/demo.sh to read; nothing
secret is written to disk.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from detections.core.device_keys import issue_device_key, revoke_device_keys
from detections.models import Camera, DeviceKey

DEMO_KEY_LABEL = "make demo"


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
        camera, _ = Camera.objects.get_or_create(name="gate-1")
        key, secret = issue_device_key(cameras=[camera], label=DEMO_KEY_LABEL)
        self.stdout.write(f'==> issued device key {key.prefix}... for camera gate-1 (label "{DEMO_KEY_LABEL}")')
        self.stdout.write("DEVICE_KEY=" + secret)
