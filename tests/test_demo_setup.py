"""`manage.py demo_setup`, which `make demo` runs: the admin login, a viewer
token, and a fresh device key for the simulated camera each time."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from detections.core.device_keys import hash_key
from detections.models import DeviceKey

pytestmark = pytest.mark.django_db


def demo_setup() -> dict[str, str]:
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    lines = out.getvalue().splitlines()
    return {line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines if "=" in line and " " not in line}


def test_it_makes_the_admin_once_and_a_new_device_key_each_run_revoking_the_last():
    first = demo_setup()
    second = demo_setup()

    assert get_user_model().objects.get(username="admin").check_password("admin")
    assert first["VIEWER_TOKEN"] == second["VIEWER_TOKEN"]
    assert first["DEVICE_KEY"] != second["DEVICE_KEY"]
    assert not DeviceKey.objects.get(key_hash=hash_key(first["DEVICE_KEY"])).is_active
    fresh = DeviceKey.objects.get(key_hash=hash_key(second["DEVICE_KEY"]))
    assert fresh.is_active and [c.name for c in fresh.cameras.all()] == ["gate-1"]
