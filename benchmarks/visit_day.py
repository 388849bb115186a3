"""A generated day at one site, with its ground truth: who entered and left
when, the reads the cameras made of it (with the damage real cameras do), and
the orders they may arrive in. Pure: no database, no Django beyond the plate
rules.

    day = make_day(vehicles=10_000, seed=1, start=midnight)
    for read in arrival_order(day.reads, seed=7): ...

The site has two entry cameras (e1, e2) and two exit cameras (x1, x2), and its
parameters are the contract's defaults: `repeat_seconds` 60,
`absent_after_seconds` 86,400, `max_edits` 1.
"""

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from detections.alerts.plates import ALPHABET, normalize, within_one_edit
from detections.simulation.camera import random_plate

ENTRY_CAMERAS = ("e1", "e2")
EXIT_CAMERAS = ("x1", "x2")

# What the damage is, per read or per passage (the figures).
LATE_SHARE = 0.05  # posted out of order, up to LATE_MAX late
LATE_MAX = timedelta(hours=1)
LOOK_ALIKE_SHARE = 0.03  # one character read as its look-alike (O for 0, B for 8, ...)
WRONG_CHARACTER_SHARE = 0.01  # one character read wrong
EXIT_MISSED_SHARE = 0.02  # a passage out that no camera read
DOUBLE_READ_SHARE = 0.02  # a passage read twice within 20 s
TWO_VISITS_SHARE = 0.2  # vehicles that come twice in the day
SHORTEST_STAY = timedelta(minutes=2)
LONGEST_STAY = timedelta(hours=20)

# A character and the one OCR reads in its place, both ways: normalize() folds them together.
_LOOK_ALIKE = {"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "O": "0", "I": "1", "Z": "2", "S": "5", "B": "8"}


@dataclass(frozen=True)
class Read:
    key: str  # the tracking id: unique in the day
    camera: str  # e1, e2, x1 or x2
    at: datetime
    plate: str  # as the camera read it


@dataclass
class TrueVisit:
    vehicle: str  # the true plate
    entered_at: datetime
    exited_at: datetime
    entry_keys: list[str] = field(default_factory=list)  # the passage in (twice when read twice)
    exit_keys: list[str] = field(default_factory=list)  # empty: no camera read it out


@dataclass
class Day:
    start: datetime
    reads: list[Read]
    truth: list[TrueVisit]
    damage: dict[str, int]  # how many reads or passages each kind of damage touched


def distinct_plates(n: int, rng: random.Random) -> list[str]:
    """`n` plates whose normal forms are at least two edits apart: two true
    vehicles one edit apart would make rule 5's pairing ambiguous by design."""
    plates, taken = [], set()
    while len(plates) < n:
        plate = random_plate(rng)
        vehicle = normalize(plate)
        if vehicle in taken or taken & within_one_edit(vehicle):
            continue
        taken.add(vehicle)
        plates.append(plate)
    return plates


def make_day(vehicles: int, seed: int, start: datetime, *, damage: bool = True) -> Day:
    rng = random.Random(seed)
    counts = dict.fromkeys(("look_alike", "wrong_character", "exit_missed", "double_read"), 0)
    reads: list[Read] = []
    truth: list[TrueVisit] = []
    day = timedelta(days=1)

    def stay() -> timedelta:
        low, high = math.log(SHORTEST_STAY.total_seconds()), math.log(LONGEST_STAY.total_seconds())
        return timedelta(seconds=round(math.exp(rng.uniform(low, high)), 3))

    def seen(plate: str) -> str:
        """The plate as a camera reads it."""
        if not damage:
            return plate
        roll = rng.random()
        if roll < LOOK_ALIKE_SHARE:
            spots = [i for i, c in enumerate(plate) if c in _LOOK_ALIKE]
            if spots:
                counts["look_alike"] += 1
                i = rng.choice(spots)
                return plate[:i] + _LOOK_ALIKE[plate[i]] + plate[i + 1 :]
        elif roll < LOOK_ALIKE_SHARE + WRONG_CHARACTER_SHARE:
            counts["wrong_character"] += 1
            i = rng.randrange(len(plate))
            wrong = rng.choice([c for c in ALPHABET if c != normalize(plate[i])])
            return plate[:i] + wrong + plate[i + 1 :]
        return plate

    def passage(visit: TrueVisit, cameras: tuple[str, str], at: datetime, keys: list[str], name: str):
        camera = rng.choice(cameras)
        keys.append(name)
        reads.append(Read(name, camera, at, seen(visit.vehicle)))
        if damage and rng.random() < DOUBLE_READ_SHARE:
            counts["double_read"] += 1
            keys.append(name + "b")
            again = at + timedelta(seconds=round(rng.uniform(1, 20), 3))
            reads.append(Read(name + "b", camera, again, seen(visit.vehicle)))

    for number, plate in enumerate(distinct_plates(vehicles, rng)):
        entered = start + timedelta(seconds=round(rng.uniform(0, (day / 2).total_seconds()), 3))
        comes = 2 if rng.random() < TWO_VISITS_SHARE else 1
        for turn in range(comes):
            if entered >= start + day:
                break
            visit = TrueVisit(plate, entered, entered + stay())
            truth.append(visit)
            passage(visit, ENTRY_CAMERAS, visit.entered_at, visit.entry_keys, f"v{number}-{turn}-in")
            if damage and rng.random() < EXIT_MISSED_SHARE:
                counts["exit_missed"] += 1
            else:
                passage(visit, EXIT_CAMERAS, visit.exited_at, visit.exit_keys, f"v{number}-{turn}-out")
            entered = visit.exited_at + timedelta(seconds=round(rng.uniform(600, 4 * 3600), 3))
    return Day(start, reads, truth, counts)


def arrival_order(reads: list[Read], seed: int) -> list[Read]:
    """The order the reads reach the server: a second or two after they were
    made, and LATE_SHARE of them up to LATE_MAX late (a unit's spool)."""
    rng = random.Random(seed)
    late = LATE_MAX.total_seconds()

    def posted(read: Read) -> float:
        delay = rng.uniform(0, late) if rng.random() < LATE_SHARE else rng.uniform(0, 2)
        return read.at.timestamp() + delay

    return [read for _, read in sorted(((posted(read), n), read) for n, read in enumerate(reads))]
