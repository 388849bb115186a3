"""Create a camera and issue its device key, printed as the last line.

.venv/bin/python manage.py create_camera gate-1 --description "North gate, lane 1"
.venv/bin/python manage.py create_camera gate-1 --rotate     # revoke its keys, issue a new one
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from detections.core.device_keys import issue_device_key, revoke_device_keys
from detections.models import Camera


class Command(BaseCommand):
    help = "Create a camera and print a new device key for its edge unit (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the camera's name, as units send it in 'camera'")
        parser.add_argument("--description", default="")
        parser.add_argument("--label", default="", help="who or what holds the key (default: the camera's name)")
        parser.add_argument(
            "--rotate", action="store_true", help="the camera exists: revoke its keys and issue a new one"
        )

    @transaction.atomic
    def handle(self, *args, name, description, label, rotate, **options):
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise CommandError("the name must be 1 to 100 printable characters")
        camera = Camera.objects.filter(name=name).first()
        if camera and not rotate:
            raise CommandError(f"camera {name!r} exists; use --rotate to revoke its keys and issue a new one")
        if camera is None:
            if rotate:
                raise CommandError(f"there is no camera {name!r} to rotate the key of")
            camera = Camera.objects.create(name=name, description=description)
            self.stdout.write(f"Camera {name!r} created.")
        else:
            revoked = revoke_device_keys(camera.device_keys.all())
            self.stdout.write(f"Revoked {revoked} key(s) of camera {name!r}.")
        _, secret = issue_device_key(cameras=[camera], label=label or name)
        self.stdout.write("Device key (shown once; configure the unit with it, as 'Authorization: Token <key>'):")
        self.stdout.write(secret)
