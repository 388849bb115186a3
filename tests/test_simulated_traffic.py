"""The simulated car park and road (detections/simulation/): pure and seeded,
played here over hours in an instant; and `simulate_camera --site` and
`--corridor` posting them to a real server."""

import io
import random
import statistics
from collections import defaultdict
from datetime import datetime

from django.core.management import call_command

from detections.models import Detection
from detections.simulation.corridor import CorridorTraffic
from detections.simulation.site import SiteTraffic

ROAD = ["road-1", "road-2", "road-3", "road-4"]
SPACING = 1200.0
SPEED_KMH = 60.0


def road(**overrides) -> CorridorTraffic:
    fields = {"start": datetime(2026, 12, 7, 6, 0), "cameras": ROAD, "spacing_m": SPACING, "speed_kmh": SPEED_KMH}
    return CorridorTraffic(random.Random(5), **(fields | overrides))


def trips(reads) -> dict[str, list]:
    by_plate = defaultdict(list)
    for read in reads:
        by_plate[read.true_plate].append(read)
    return by_plate


def stretch_seconds(reads) -> list[float]:
    """The times between neighbouring cameras, over every vehicle read at both."""
    times = []
    for passes in trips(reads).values():
        for before, after in zip(passes, passes[1:], strict=False):
            if ROAD.index(after.camera) == ROAD.index(before.camera) + 1:
                times.append(after.at - before.at)
    return times


def test_vehicles_drive_the_road_in_order_at_their_speeds_from_and_to_every_camera():
    reads = road().reads_until(3600)
    assert [r.at for r in reads] == sorted(r.at for r in reads)
    pairs = set()
    for passes in trips(reads).values():
        indexes = [ROAD.index(r.camera) for r in passes]
        assert indexes == sorted(set(indexes)), "a vehicle went back, or was read twice at a camera"
        pairs.add((indexes[0], indexes[-1]))
    assert {(0, 3), (0, 1), (1, 2), (2, 3)} <= pairs
    typical = SPACING / (SPEED_KMH / 3.6)  # 72 s
    times = stretch_seconds(reads)
    assert 0.9 * typical < statistics.median(times) < 1.1 * typical
    assert min(times) < 0.9 * typical and max(times) > 1.1 * typical  # speeds vary


def test_the_road_slows_down_during_its_slowdown_hour_and_only_then():
    normal = statistics.median(stretch_seconds(road().reads_until(3000)))
    slowed = statistics.median(stretch_seconds(road(slowdown_hour=6, slowdown_factor=3).reads_until(3000)))
    other_hour = statistics.median(stretch_seconds(road(slowdown_hour=9, slowdown_factor=3).reads_until(3000)))
    assert 2.7 < slowed / normal < 3.3
    assert other_hour == normal


def test_the_car_park_reads_entries_then_exits_with_unread_exits_double_reads_and_misreads():
    traffic = SiteTraffic(random.Random(11), arrivals_per_second=0.2, stay_median_seconds=300, capacity=40)
    reads = traffic.reads_until(4 * 3600)
    for passes in trips(reads).values():
        assert passes[0].camera == "gate-in"
        assert {r.camera for r in passes} <= {"gate-in", "gate-out"}
    assert any(r.plate != r.true_plate for r in reads)
    entered = {r.true_plate for r in reads if r.camera == "gate-in"}
    left = {r.true_plate for r in reads if r.camera == "gate-out"}
    assert 0 < len(entered - left) < 0.2 * len(entered)
    assert len(reads) > len(entered) + len(left)  # double reads
    assert max(traffic.inside(t) for t in range(0, 4 * 3600, 60)) <= 40


def test_simulate_camera_corridor_posts_the_road_s_reads(server):
    out = io.StringIO()
    call_command(
        "simulate_camera",
        *("--url", server.base_url, "--token", server.credentials.device, "--seed", "3"),
        *("--corridor", "--camera", "gate-1", "--camera", "gate-2", "--rate", "50", "--count", "6"),
        *("--spacing", "10", "--speed", "3600"),  # 10 ms a stretch: the test does not wait for the far end
        stdout=out,
    )
    assert "Sent 6, stored 6, failed 0" in out.getvalue()
    stored = Detection.objects.select_related("camera")
    assert stored.count() == 6 and {d.camera.name for d in stored} <= {"gate-1", "gate-2"}
    assert all(d.plate for d in stored)


def test_simulate_camera_site_posts_the_car_park_s_entries(server):
    out = io.StringIO()
    call_command(
        "simulate_camera",
        *("--url", server.base_url, "--token", server.credentials.device, "--seed", "3"),
        *("--site", "--entry-camera", "gate-1", "--exit-camera", "gate-2", "--rate", "50", "--count", "5"),
        stdout=out,
    )
    assert "Sent 5, stored 5, failed 0" in out.getvalue()
    assert {d.camera.name for d in Detection.objects.select_related("camera")} == {"gate-1"}  # stays are 30 s or more
