"""The pairing rule (protocol.md, "Routes and journeys"), as a pure function of
the reads: no database, no clock, no arrival order.

End reads (at the route's `to_camera`) are taken in time order, ties by
tracking id. An end read within `repeat_seconds` of the same vehicle's
previous end read (whether that one paired or not) is a repeat and pairs with
nothing. Each other end read takes the latest start read (at `from_camera`)
of the same vehicle strictly before it, at most `max_seconds` before it, that
no earlier end read took. An end read with no such start read takes the one
of the single other vehicle within one edit that has one; none if two or more
vehicles do.

The engine (`engine.py`) runs the same function from a point in time on,
handing it what the end reads before that point left behind: the start reads
they took and each vehicle's last end read.
"""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein


@dataclass(frozen=True)
class Read:
    """A plate read, as pairing and transitions see it."""

    detection_id: int
    vehicle: str  # the plate's normal form
    at: datetime
    tracking_id: str = ""
    camera_id: int = 0
    plate: str = ""  # as read
    vehicle_type: str = ""

    @property
    def order(self) -> tuple:
        # Unique for stored reads (the detections' unique key), and the same
        # whatever order they arrived in.
        return (self.at, self.tracking_id, self.camera_id)


@dataclass(frozen=True)
class Rule:
    max_seconds: float
    repeat_seconds: float


@dataclass(frozen=True)
class Pair:
    start: Read
    end: Read
    fuzzy: bool  # the start read is another vehicle's, within one edit

    @property
    def seconds(self) -> float:
        return (self.end.at - self.start.at).total_seconds()


@dataclass
class State:
    """What the end reads before a point in time left behind."""

    taken: set[int] = field(default_factory=set)  # start reads' detection ids
    last_end: dict[str, datetime] = field(default_factory=dict)  # vehicle -> its last end read's time


def pair(starts: Iterable[Read], ends: Iterable[Read], rule: Rule, state: State | None = None) -> list[Pair]:
    """The journeys of `ends`, in end order. `starts` must hold every start
    read within `max_seconds` before the first end read, on."""
    state = state or State()
    taken = set(state.taken)
    last_end = dict(state.last_end)
    window = timedelta(seconds=rule.max_seconds)
    repeat = timedelta(seconds=rule.repeat_seconds)
    by_vehicle: dict[str, list[Read]] = defaultdict(list)
    for start in sorted(starts, key=lambda read: read.order):
        by_vehicle[start.vehicle].append(start)
    times = {vehicle: [read.at for read in reads] for vehicle, reads in by_vehicle.items()}

    def latest_free(vehicle: str, end: Read) -> Read | None:
        reads = by_vehicle.get(vehicle)
        if not reads:
            return None
        index = bisect_left(times[vehicle], end.at)  # the start reads strictly before the end read
        while index > 0:
            index -= 1
            start = reads[index]
            if end.at - start.at > window:
                return None
            if start.detection_id not in taken:
                return start
        return None

    near: dict[str, list[str]] = {}
    vehicles = list(by_vehicle)

    def neighbours(vehicle: str) -> list[str]:
        """The vehicles with start reads one edit from `vehicle` (not itself):
        Levenshtein distance between the normal forms, as the watch-lists measure it."""
        if vehicle not in near:
            found = process.extract(vehicle, vehicles, scorer=Levenshtein.distance, score_cutoff=1, limit=None)
            near[vehicle] = [other for other, _, _ in found if other != vehicle]
        return near[vehicle]

    pairs = []
    for end in sorted(ends, key=lambda read: read.order):
        previous = last_end.get(end.vehicle)
        last_end[end.vehicle] = end.at
        if previous is not None and end.at - previous <= repeat:
            continue
        start, fuzzy = latest_free(end.vehicle, end), False
        if start is None:
            found = [
                candidate for other in neighbours(end.vehicle) if (candidate := latest_free(other, end)) is not None
            ]
            if len(found) == 1:
                start, fuzzy = found[0], True
        if start is not None:
            taken.add(start.detection_id)
            pairs.append(Pair(start, end, fuzzy))
    return pairs


def speed_kmh(distance_m: float | None, seconds: float) -> float | None:
    """The average speed over a journey; None without a distance."""
    if distance_m is None or seconds <= 0:
        return None
    return distance_m * 3.6 / seconds
