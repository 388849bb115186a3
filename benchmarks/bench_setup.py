"""Credentials and cameras for a benchmark run, made in the benchmark database.

    DATABASE_URL=... python benchmarks/bench_setup.py gate-1 gate-2 ...

Prints one JSON object: {"device_keys": {camera: key, "*": key for all},
"viewer_token": token or null}. Works whether or not the app has device keys
and viewer tokens yet: what it lacks is null, and the generator sends no header.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vehicle_monitor.settings")

import django


def main(names):
    # Django is set up before anything that uses the ORM is imported.
    django.setup()
    from django.apps import apps
    from django.contrib.auth import get_user_model

    from detections.models import Camera

    cameras = [Camera.objects.get_or_create(name=name)[0] for name in names]
    keys = {}
    try:
        from detections.core.device_keys import issue_device_key
    except ImportError:
        issue_device_key = None
    if issue_device_key is not None:
        for camera in cameras:
            keys[camera.name] = issue_device_key(cameras=[camera], label=f"bench {camera.name}")[1]
        # Batches carry detections of every camera: one unit key bound to all of them.
        keys["*"] = issue_device_key(cameras=cameras, label="bench batch unit")[1]
    token = None
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.models import Token

        user, _ = get_user_model().objects.get_or_create(username="bench-viewer")
        token = Token.objects.get_or_create(user=user)[0].key
    print(json.dumps({"device_keys": keys, "viewer_token": token}))


if __name__ == "__main__":
    main(sys.argv[1:])
