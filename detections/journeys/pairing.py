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

The engine (`engine.py`) runs the same walk from a changed read's time on
(`replay`), handing it what the end reads before that point left behind (the
start reads they took, each vehicle's last end read) and the stored journeys,
and stops where the walk meets them again.
"""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from detections.alerts.plates import OneEditIndex, within_one_edit


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

    @property
    def reach(self) -> timedelta:
        """How far forward a read changes the pairing by itself: a start read
        may be taken `max_seconds` on, an end read makes repeats `repeat_seconds` on."""
        return timedelta(seconds=max(self.max_seconds, self.repeat_seconds))


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


class Pairing:
    """The rule's walk over end reads in order, from a state on."""

    def __init__(self, starts: Iterable[Read], rule: Rule, state: State | None):
        state = state or State()
        self.taken = set(state.taken)
        self.last_end = dict(state.last_end)
        self.window = timedelta(seconds=rule.max_seconds)
        self.repeat = timedelta(seconds=rule.repeat_seconds)
        self.by_vehicle: dict[str, list[Read]] = defaultdict(list)
        for start in sorted(starts, key=lambda read: read.order):
            self.by_vehicle[start.vehicle].append(start)
        self.times = {vehicle: [read.at for read in reads] for vehicle, reads in self.by_vehicle.items()}
        self.near: dict[str, set[str]] = {}
        self.index: OneEditIndex | None = None
        self.characters: set[str] | None = None

    def take(self, end: Read) -> Pair | None:
        """The end read's journey, if it makes one (end reads in order)."""
        previous = self.last_end.get(end.vehicle)
        self.last_end[end.vehicle] = end.at
        if previous is not None and end.at - previous <= self.repeat:
            return None
        start, fuzzy = self.latest_free(end.vehicle, end), False
        if start is None:
            found = [
                candidate
                for other in self.neighbours(end.vehicle)
                if (candidate := self.latest_free(other, end)) is not None
            ]
            if len(found) == 1:
                start, fuzzy = found[0], True
        if start is None:
            return None
        self.taken.add(start.detection_id)
        return Pair(start, end, fuzzy)

    def latest_free(self, vehicle: str, end: Read) -> Read | None:
        reads = self.by_vehicle.get(vehicle)
        if not reads:
            return None
        index = bisect_left(self.times[vehicle], end.at)  # the start reads strictly before the end read
        while index > 0:
            index -= 1
            start = reads[index]
            if end.at - start.at > self.window:
                return None
            if start.detection_id not in self.taken:
                return start
        return None

    def neighbours(self, vehicle: str) -> set[str]:
        """The vehicles with start reads one edit from `vehicle` (not itself):
        Levenshtein distance between the normal forms, as the watch-lists measure it.

        A few look-ups (a step's new end reads) spell out the vehicle's
        one-edit neighbours over the characters the start reads use and look
        each up (some 500); many (a day paired again) pay for an index of the
        start reads' vehicles (some 10 entries each) first."""
        if vehicle not in self.near:
            if self.index is None and len(self.near) * 50 >= len(self.by_vehicle):
                self.index = OneEditIndex(self.by_vehicle)
            if self.index is not None:
                self.near[vehicle] = self.index.near(vehicle)
            else:
                if self.characters is None:
                    self.characters = set().union(*self.by_vehicle)
                spelled = within_one_edit(vehicle, self.characters)
                self.near[vehicle] = {other for other in spelled if other in self.by_vehicle and other != vehicle}
        return self.near[vehicle]


def pair(starts: Iterable[Read], ends: Iterable[Read], rule: Rule, state: State | None = None) -> list[Pair]:
    """The journeys of `ends`, in end order. `starts` must hold every start
    read within `max_seconds` before the first end read, on."""
    walk = Pairing(starts, rule, state)
    return [found for end in sorted(ends, key=lambda read: read.order) if (found := walk.take(end)) is not None]


@dataclass(frozen=True)
class Stored:
    """A journey paired earlier, as `replay` compares it: its start read."""

    start_id: int
    start_at: datetime


@dataclass
class Replayed:
    pairs: list[Pair]  # the journeys of the end reads before `stop`
    stop: datetime | None  # from here on the stored journeys stand; None: paired to the last end read


def replay(
    starts: Iterable[Read],
    ends: Iterable[Read],
    rule: Rule,
    state: State,
    stored: dict[int, Stored],
    changes: list[datetime],
    until: datetime | None = None,
) -> Replayed | None:
    """Pair `ends` again after reads changed at `changes` (times of reads
    added, removed or moved to another vehicle, at either camera), stopping
    where the new pairing meets the stored one again: a change reaches at most
    `max_seconds` (a start read) or `repeat_seconds` (an end read's repeats)
    forward, except through the start reads it leaves taken or free
    differently, which are followed until none of them can be taken any more.

    `starts` and `ends` are the reads before `until` (None: all), from the
    earliest change on (starts from `max_seconds` before it); `state` is what
    the end reads before the earliest change left; `stored` the stored
    journeys by end read id, from the earliest change on, those of end reads
    that are gone included. The changes after the stop are for another call,
    from the state the stored journeys tell there: at the stop, the start
    reads this pairing takes and the stored journeys took are the same, as far
    as a later end read can take them, so the stored journeys may be those
    before this call. None: the pairing had not met the stored one by
    `until`; read further and call again."""
    walk = Pairing(starts, rule, state)
    reach = rule.reach
    changes = sorted(changes)
    # The start reads taken by the new pairing and not the stored one, or the reverse: their times.
    differ: dict[int, datetime] = {}

    def note(start_id: int, at: datetime):
        if differ.pop(start_id, None) is None:
            differ[start_id] = at

    ends = sorted(ends, key=lambda read: read.order)
    present = {end.detection_id for end in ends}
    for end_id, journey in stored.items():
        if end_id not in present:  # its end read is gone: its start read was taken, no longer is
            note(journey.start_id, journey.start_at)

    def met(at: datetime) -> bool:
        """Do the stored journeys stand from `at` on (nothing paired again yet at `at`)?"""
        for start_id, start_at in list(differ.items()):
            if at - start_at > walk.window:
                del differ[start_id]  # out of any later end read's reach
        if differ:
            return False
        # Every change behind is out of reach (those ahead are for another call).
        behind = bisect_left(changes, at)
        return behind == 0 or at - changes[behind - 1] > reach

    pairs = []
    previous_at = None
    for end in ends:
        if end.at != previous_at and previous_at is not None and met(end.at):
            return Replayed(pairs, end.at)
        previous_at = end.at
        found = walk.take(end)
        if found is not None:
            pairs.append(found)
            note(found.start.detection_id, found.start.at)
        if (journey := stored.get(end.detection_id)) is not None:
            note(journey.start_id, journey.start_at)
    if until is None:
        return Replayed(pairs, None)
    return Replayed(pairs, until) if met(until) else None


def speed_kmh(distance_m: float | None, seconds: float) -> float | None:
    """The average speed over a journey; None without a distance."""
    if distance_m is None or seconds <= 0:
        return None
    return distance_m * 3.6 / seconds
