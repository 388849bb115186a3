"""What the journey tests set up the same way: a bridge route between two
cameras, reads stored the way the API stores them, the engine caught up, and
the brute-force forms of the contract's definitions to compare with."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from conftest import store_detection

from detections.core import writes
from detections.journeys import engine, pairing, transitions
from detections.models import Camera, Event, EventKind, Journey, PlateRead, Route

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def bridge(**fields) -> Route:
    south, _ = Camera.objects.get_or_create(name="bridge-s")
    north, _ = Camera.objects.get_or_create(name="bridge-n")
    values = {"name": "Bridge northbound", "distance_m": 2400, "max_seconds": 1800, "speed_limit_kmh": 80}
    values.update(fields)
    return Route.objects.create(from_camera=south, to_camera=north, since=T0 - timedelta(days=1), **values)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def read(plate: str, camera: str, seconds: float, tracking_id: str | None = None):
    return store_detection(
        tracking_id or f"{plate}-{camera}-{seconds}",
        camera=camera,
        detected_at=at(seconds),
        plate=plate,
        with_image=False,
    )


def delete(detection):
    writes.detection_delete(detection=detection)


def journeys(route=None) -> list[tuple[int, int, bool]]:
    rows = Journey.objects.filter(**({"route": route} if route else {})).order_by("ended_at", "id")
    return [(j.from_detection, j.to_detection, j.fuzzy) for j in rows]


def journey_events() -> list[tuple[str, int, int]]:
    rows = Event.objects.filter(kind=EventKind.JOURNEY).order_by("seq")
    return [
        (e.payload["event"], e.payload["journey"]["from_detection"], e.payload["journey"]["to_detection"]) for e in rows
    ]


def started() -> None:
    """The engine's cursor made (at the head) and every route derived."""
    engine.catch_up()


def reads_as_pairing_sees_them() -> list[pairing.Read]:
    return [engine._read_of(row) for row in PlateRead.objects.all()]


def brute_force_journeys(route: Route, reads: list[pairing.Read]) -> list[tuple[int, int, bool]]:
    covered = [r for r in reads if r.at >= route.covers_from]
    starts = [r for r in covered if r.camera_id == route.from_camera_id]
    ends = [r for r in covered if r.camera_id == route.to_camera_id]
    found = pairing.pair(starts, ends, engine.rule_of(route))
    return sorted(((p.start.detection_id, p.end.detection_id, p.fuzzy) for p in found), key=lambda t: t[1])


def brute_force_transitions(reads: list[pairing.Read]) -> dict[int, transitions.Transition]:
    by_vehicle = defaultdict(list)
    for r in reads:
        by_vehicle[r.vehicle].append(r)
    found = {}
    for vehicle_reads in by_vehicle.values():
        found.update(transitions.derive(vehicle_reads))
    return found


def stored_transitions() -> dict[int, transitions.Transition]:
    return {
        row.detection_id: transitions.Transition(row.repeat, row.from_camera_id, row.gap_seconds)
        for row in PlateRead.objects.all()
    }


class EngineProcess:
    """`manage.py follow_journeys` running in a process of its own, on the test database."""

    def __init__(self):
        import os
        import subprocess
        import sys
        import threading

        from conftest import ROOT, database_url

        self.output: list[str] = []
        self._started = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "follow_journeys", "--nice", "0"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._started.wait(timeout=30) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("the engine did not start:\n" + "".join(self.output))

    def _read_output(self):
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("Following the log"):
                self._started.set()
        self._started.set()

    def stop(self):
        from processes import end_process

        end_process(self.process)
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
        print("--- engine output ---\n" + "".join(self.output))  # shown when the test fails
