"""`manage.py demo_setup`, which `make demo` runs: the admin login, a viewer
token, a fresh device key for the simulated camera each time, and the demo
road's past, whose journeys make its usual travel time."""

import io
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from detections.core.device_keys import hash_key
from detections.core.writes import detection_create
from detections.journeys import engine as journey_engine
from detections.journeys.models import Journey
from detections.management.commands.demo_setup import (
    DEMO_CAPACITY,
    DEMO_ENTRY,
    DEMO_EXIT,
    DEMO_ROAD,
    DEMO_ROUTE,
    DEMO_SITE,
)
from detections.models import Camera, Detection, DeviceKey, Route, Visit
from detections.simulation.site import SiteTraffic
from detections.sites import edits, engine, queries
from detections.sites.models import Site

pytestmark = pytest.mark.django_db


def demo_setup(*args: str) -> dict[str, str]:
    out = io.StringIO()
    call_command("demo_setup", *args, stdout=out)
    lines = out.getvalue().splitlines()
    return {line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines if "=" in line and " " not in line}


def test_it_makes_the_admin_once_and_a_new_device_key_each_run_revoking_the_last():
    first = demo_setup("--no-road-history")
    second = demo_setup("--no-road-history")

    assert get_user_model().objects.get(username="admin").check_password("admin")
    assert first["VIEWER_TOKEN"] == second["VIEWER_TOKEN"]
    assert first["DEVICE_KEY"] != second["DEVICE_KEY"]
    assert not DeviceKey.objects.get(key_hash=hash_key(first["DEVICE_KEY"])).is_active
    fresh = DeviceKey.objects.get(key_hash=hash_key(second["DEVICE_KEY"]))
    assert fresh.is_active and sorted(c.name for c in fresh.cameras.all()) == [
        "gate-1",
        "gate-in",
        "gate-out",
        *DEMO_ROAD,
    ]


def test_it_makes_the_demo_road_s_route_once_from_its_first_camera_to_its_last():
    demo_setup()
    demo_setup()
    route = Route.objects.get(name=DEMO_ROUTE)
    assert Route.objects.count() == 1
    assert (route.from_camera.name, route.to_camera.name) == (DEMO_ROAD[0], DEMO_ROAD[-1])
    assert route.distance_m == 1000


@pytest.mark.django_db(transaction=True)
def test_the_demo_road_s_past_gives_its_usual_travel_time_from_the_first_minute():
    """The reads demo_setup writes for the road, made journeys by the journey
    engine's first start: some end in this hour of this weekday in each of the
    4 weeks before, so travel-time-now answers a usual; none is recent, and a
    second run writes no more."""
    token = demo_setup()["VIEWER_TOKEN"]
    reads = Detection.objects.count()
    demo_setup()
    assert Detection.objects.count() == reads and 3000 < reads < 10000
    journey_engine.catch_up()
    route = Route.objects.get(name=DEMO_ROUTE)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    body = client.get(f"/api/routes/{route.pk}/travel-time-now/").json()

    now = datetime.fromisoformat(body["at"])
    assert body["now"]["count"] == 0
    windows = [
        (datetime.fromisoformat(w["since"]), datetime.fromisoformat(w["until"])) for w in body["usual"]["windows"]
    ]
    assert [until.weekday() for _, until in windows] == [now.weekday()] * 4
    for since, until in windows:
        assert Journey.objects.filter(route=route, ended_at__gte=since, ended_at__lt=until).exists(), since
    # 1 km at about 60 km/h: a minute.
    assert body["usual"]["count"] >= 20 and 45 < body["usual"]["median_seconds"] < 90
    assert not Detection.objects.filter(detected_at__gt=now - timedelta(days=6)).exists()


def test_it_makes_the_demo_car_park_once_with_its_entry_and_exit_cameras():
    demo_setup("--no-road-history")
    demo_setup("--no-road-history")
    site = Site.objects.get(name=DEMO_SITE)
    assert Site.objects.count() == 1 and site.capacity == DEMO_CAPACITY
    assert {(role.camera.name, role.role) for role in site.cameras.all()} == {
        (DEMO_ENTRY, "entry"),
        (DEMO_EXIT, "exit"),
    }


@pytest.mark.django_db(transaction=True)
def test_the_simulated_car_park_on_the_demo_site_makes_the_visits_its_reads_describe():
    """Half an hour of the demo's site simulation, through the real visit engine:
    every vehicle whose exit was read (misread or read twice as it may be) has a
    closed visit, the others are open, and no more cars are inside than fit."""
    demo_setup("--no-road-history")  # the road's reads, weeks old, are none of the site's
    start = datetime.now(UTC) - timedelta(minutes=30)
    # The demo's site covers reads from its creation on; these are older.
    site = edits.site_update(Site.objects.get(name=DEMO_SITE), since=start - timedelta(minutes=1))
    engine.derive_pending()
    traffic = SiteTraffic(random.Random(3), arrivals_per_second=0.1, stay_median_seconds=120, capacity=DEMO_CAPACITY)
    reads = traffic.reads_until(30 * 60)
    cameras = {camera.name: camera for camera in Camera.objects.all()}
    for n, read in enumerate(reads):
        detection_create(
            camera=cameras[read.camera],
            tracking_id=f"sim-{n}",
            vehicle_type=read.vehicle_type,
            detected_at=start + timedelta(seconds=read.at),
            plate=read.plate,
        )
    while engine.step():
        pass

    entered = {read.true_plate for read in reads if read.camera == DEMO_ENTRY}
    left = {read.true_plate for read in reads if read.camera == DEMO_EXIT}
    assert any(read.plate != read.true_plate for read in reads), "no misread in the sample"
    assert len(reads) > len(entered) + len(left), "no double read in the sample"
    assert entered - left, "every exit was read"
    states = Counter(Visit.objects.filter(site=site).values_list("state", flat=True))
    assert states["closed"] == len(left) and states["open"] == len(entered - left), states
    assert sum(states.values()) == len(entered)
    # The site counts the unread exits as inside; the simulation, the cars really there.
    assert queries.occupancy_now(site.pk, datetime.now(UTC)) == len(entered - left)
    assert traffic.inside(30 * 60) <= DEMO_CAPACITY
