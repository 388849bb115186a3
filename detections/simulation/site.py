"""A simulated car park: vehicles drive in past an entry camera, stay a while
and drive out past an exit camera, with the flaws real plate readers have.

- Arrivals come at random (a Poisson stream of `arrivals_per_second`); with a
  `capacity`, a vehicle that finds the site full drives on and is not read.
- Stays are log-normal around `stay_median_seconds` (most short, a few long),
  so some pass a site's max stay.
- Some exits are never read (`unread_exit`), some passages are read twice a
  few seconds apart (`double_read`), and some reads get one character wrong
  (`misread`), at either camera.

Pure and seeded: `reads_until(t)` answers the reads due by t seconds after the
start, in time order, so a test can play hours in an instant and
`simulate_camera --site` plays it in real time.
"""

import heapq
import math
import random
import string
from dataclasses import dataclass, field

from detections.simulation.camera import random_vehicle


@dataclass(order=True)
class Read:
    at: float  # seconds after the start
    camera: str = field(compare=False)
    plate: str = field(compare=False)  # as read, misreads included
    vehicle_type: str = field(compare=False)
    true_plate: str = field(compare=False)  # the vehicle's own plate


def misread(plate: str, rng: random.Random) -> str:
    """The plate with one character read as another of its kind."""
    index = rng.randrange(len(plate))
    alphabet = string.digits if plate[index].isdigit() else string.ascii_uppercase
    wrong = rng.choice([c for c in alphabet if c != plate[index]])
    return plate[:index] + wrong + plate[index + 1 :]


@dataclass
class SiteTraffic:
    rng: random.Random
    entry_camera: str = "gate-in"
    exit_camera: str = "gate-out"
    arrivals_per_second: float = 0.2
    stay_median_seconds: float = 300.0
    capacity: int | None = None
    unread_exit: float = 0.06
    double_read: float = 0.05
    misread: float = 0.03

    def __post_init__(self):
        self._due: list[Read] = []  # reads scheduled, earliest first
        self._leaving: list[float] = []  # when each vehicle inside leaves
        self._next_arrival = self.rng.expovariate(self.arrivals_per_second)

    def inside(self, at: float) -> int:
        """Vehicles inside at `at` (the reads decided so far)."""
        return sum(1 for leaves in self._leaving if leaves > at)

    def reads_until(self, t: float) -> list[Read]:
        while self._next_arrival <= t:
            self._arrive(self._next_arrival)
            self._next_arrival += self.rng.expovariate(self.arrivals_per_second)
        due = []
        while self._due and self._due[0].at <= t:
            due.append(heapq.heappop(self._due))
        return due

    def _arrive(self, at: float):
        self._leaving = [leaves for leaves in self._leaving if leaves > at]
        if self.capacity is not None and len(self._leaving) >= self.capacity:
            return  # full: it drives on
        vehicle_type, plate = random_vehicle(self.rng)
        if not plate:
            return  # a bicycle: nothing for a plate reader
        # Log-normal: a median of stay_median_seconds, one in ten past about 3.6 times it.
        stay = self.stay_median_seconds * math.exp(self.rng.gauss(0, 1.0))
        leaves = at + max(30.0, stay)
        self._leaving.append(leaves)
        self._pass(at, self.entry_camera, plate, vehicle_type)
        if self.rng.random() >= self.unread_exit:
            self._pass(leaves, self.exit_camera, plate, vehicle_type)

    def _pass(self, at: float, camera: str, plate: str, vehicle_type: str):
        read = misread(plate, self.rng) if self.rng.random() < self.misread else plate
        heapq.heappush(self._due, Read(at, camera, read, vehicle_type, plate))
        if self.rng.random() < self.double_read:
            # The unit reads the same passage again a moment later.
            heapq.heappush(self._due, Read(at + self.rng.uniform(1, 8), camera, plate, vehicle_type, plate))
