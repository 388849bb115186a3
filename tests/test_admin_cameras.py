"""The admin's camera list: key status, last seen, detections today (from the
counters)."""

from datetime import timedelta

import pytest
from admin_pages import changelist_rows, text
from conftest import store_detection
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone

from detections.core.device_keys import issue_device_key, revoke_device_keys
from detections.models import Camera, DeviceKey, HourlyCount

pytestmark = pytest.mark.django_db

CAMERAS = reverse("admin:detections_camera_changelist")


def test_the_camera_list_shows_active_keys_last_seen_and_detections_today(admin_client):
    gate, yard = Camera.objects.create(name="gate-1"), Camera.objects.create(name="yard")
    issue_device_key(cameras=[gate], label="unit a")
    issue_device_key(cameras=[gate], label="unit b")
    yard_key, _ = issue_device_key(cameras=[yard], label="old unit")
    revoke_device_keys(DeviceKey.objects.filter(pk=yard_key.pk))
    now = timezone.now()
    store_detection("trk-1", camera="gate-1", detected_at=now - timedelta(minutes=1))
    store_detection("trk-2", camera="gate-1", detected_at=now - timedelta(minutes=2), vehicle_type="bus")
    store_detection("trk-3", camera="gate-1", detected_at=now - timedelta(days=2))  # not today
    gate.refresh_from_db()

    with CaptureQueriesContext(connection) as queries:
        rows = changelist_rows(admin_client.get(CAMERAS))

    assert text(rows[gate.pk]["active_keys"]) == "2"
    assert text(rows[yard.pk]["active_keys"]) == "0"
    assert text(rows[gate.pk]["last_seen_at"]) == formats.localize(timezone.localtime(gate.last_seen_at))
    assert text(rows[yard.pk]["last_seen_at"]) == "-"
    assert text(rows[gate.pk]["detections_today"]) == "2"
    assert text(rows[yard.pk]["detections_today"]) == "0"
    # From the hourly counters: the page never counts the detections table.
    assert not [q["sql"] for q in queries.captured_queries if "detections_detection`" in q["sql"]]


def test_detections_today_follows_the_hourly_counters(admin_client):
    gate = Camera.objects.create(name="gate-1")
    store_detection("trk-1", camera="gate-1", detected_at=timezone.now())
    HourlyCount.objects.filter(camera=gate).update(count=41)  # what the counters say is what is shown

    rows = changelist_rows(admin_client.get(CAMERAS))

    assert text(rows[gate.pk]["detections_today"]) == "41"
