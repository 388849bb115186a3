"""A simulated road: plate-reading cameras along a corridor, vehicles driving it
at varying speeds, and a slowdown at a chosen hour.

- Vehicles join at random (a Poisson stream of `arrivals_per_second`) at one
  camera and leave after a later one, so every origin-destination pair of the
  road has traffic, the whole road most.
- Each drives at its own speed, normal around `speed_kmh` (15 % spread).
- While the wall clock's hour is `slowdown_hour`, every vehicle passing a stretch
  takes `slowdown_factor` times as long.
- Some reads are missed (`missed_read`), so a journey may skip a camera.

Pure and seeded like SiteTraffic: `reads_until(t)` answers the reads due by t
seconds after `start`, in time order. `weeks_before` plays the same road in the
weeks before a moment, as the history its usual travel time is made of.
"""

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from detections.simulation.camera import random_vehicle
from detections.simulation.site import Read


@dataclass
class CorridorTraffic:
    rng: random.Random
    start: datetime  # the wall-clock time of t = 0, for the slowdown hour (its own zone)
    cameras: list[str] = field(default_factory=lambda: ["road-1", "road-2", "road-3"])
    spacing_m: float = 1000.0  # between neighbouring cameras
    arrivals_per_second: float = 0.3
    speed_kmh: float = 60.0
    slowdown_hour: int | None = None
    slowdown_factor: float = 3.0
    missed_read: float = 0.04

    def __post_init__(self):
        if len(self.cameras) < 2:
            raise ValueError("a corridor needs at least two cameras")
        self._due: list[Read] = []
        self._next_arrival = self.rng.expovariate(self.arrivals_per_second)

    def slowed(self, at: float) -> bool:
        return self.slowdown_hour is not None and (self.start + timedelta(seconds=at)).hour == self.slowdown_hour

    def reads_until(self, t: float) -> list[Read]:
        while self._next_arrival <= t:
            self._drive(self._next_arrival)
            self._next_arrival += self.rng.expovariate(self.arrivals_per_second)
        due = []
        while self._due and self._due[0].at <= t:
            due.append(heapq.heappop(self._due))
        return due

    def _drive(self, at: float):
        vehicle_type, plate = random_vehicle(self.rng)
        if not plate:
            return
        last = len(self.cameras) - 1
        # Half drive the whole road; the others join and leave somewhere along it.
        if self.rng.random() < 0.5:
            first, final = 0, last
        else:
            first = self.rng.randrange(last)
            final = self.rng.randrange(first + 1, last + 1)
        speed = max(5.0, self.rng.gauss(self.speed_kmh, 0.15 * self.speed_kmh)) / 3.6  # m/s
        for index in range(first, final + 1):
            if index > first:
                stretch = self.spacing_m / speed
                at += stretch * (self.slowdown_factor if self.slowed(at) else 1.0)
            if self.rng.random() >= self.missed_read:
                heapq.heappush(self._due, Read(at, self.cameras[index], plate, vehicle_type, plate))


def weeks_before(
    traffic_at: Callable[[datetime], CorridorTraffic], now: datetime, *, weeks: int = 4, hours: float = 24
) -> list[tuple[datetime, Read]]:
    """The road's reads, with their times, over `hours` from an hour before
    `now` on the same weekday in each of the `weeks` weeks before: the windows
    the usual for this hour reads, now and for the next hours. `traffic_at(t)`
    makes the road to play from t (its cameras, speed, rate and slowdown hour)."""
    played = []
    for week in range(weeks, 0, -1):
        start = now - timedelta(weeks=week, hours=1)
        traffic = traffic_at(start)
        played.extend((start + timedelta(seconds=read.at), read) for read in traffic.reads_until(hours * 3600))
    return played
