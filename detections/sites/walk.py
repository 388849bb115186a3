"""The walk: what visits a site's reads make (protocol.md, "Sites, visits and
occupancy", its five rules in order). A pure function of the reads, the site's
parameters and the present moment: the same reads, in whatever order they
came, make the same visits.

1. A read within `repeat_seconds` of the same vehicle's previous read at the
   same camera, or of its previous read in the same direction, is a repeat and
   changes nothing (compared with the previous read whether or not that one
   counted, so a queue at the barrier stays one passage).
2. At an `entry` camera a read is an entry, at an `exit` camera an exit; at a
   `both` camera its `direction` decides, and without one it is an exit if its
   vehicle has an open visit, else an entry.
3. An entry opens a visit; an entry while the vehicle's visit is open closes
   that one as `exit_missed` first.
4. An exit at or before `entered_at + absent_after_seconds` of its vehicle's
   open visit closes it; after that instant the visit is `expired`, and such an
   exit, or one with no open visit, is a visit of its own, `entry_missed`.
5. An exit whose vehicle has no open visit goes to the open visit of the one
   other vehicle within `max_edits` edits that has one; to none if two or more
   do. Entries never pair by edit distance.

Where the contract is silent: "within" includes the boundary (a read exactly
`repeat_seconds` after the previous one is a repeat); an exit that rule 5 gives
to another vehicle's visit counts as that vehicle's read too for rule 1, so a
second, correct read of the same passage is a repeat rather than an
`entry_missed`.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz.distance import Levenshtein

ENTRY, EXIT, BOTH = "entry", "exit", "both"
IN, OUT = "in", "out"
OPEN, CLOSED, EXIT_MISSED, ENTRY_MISSED, EXPIRED = "open", "closed", "exit_missed", "entry_missed", "expired"


@dataclass(frozen=True)
class Read:
    """A detection as the walk sees it."""

    detection_id: int
    at: datetime
    camera: str
    tracking_id: str
    plate: str
    vehicle: str  # the plate's normal form (`alerts.plates.normalize`)
    direction: str = ""  # "in", "out" or "" (the unit did not say)
    vehicle_type: str = ""

    @property
    def order(self) -> tuple:
        # (time, camera name, tracking id) as the contract says; the id breaks
        # a tie the contract leaves (two reads of one track at one instant).
        return self.at, self.camera, self.tracking_id, self.detection_id


@dataclass(frozen=True)
class Params:
    roles: Mapping[str, str]  # camera name -> entry, exit or both
    repeat_seconds: int = 60
    absent_after_seconds: int = 86400
    max_edits: int = 1
    max_stay_seconds: int | None = None


@dataclass
class Visit:
    """A visit as the walk makes it (not stored)."""

    vehicle: str
    plate: str
    anchor: Read  # the entry, or the exit of an entry_missed visit
    state: str = OPEN
    entry: Read | None = None
    exit: Read | None = None
    entered_at: datetime | None = None
    exited_at: datetime | None = None
    ends_at: datetime | None = None  # where occupancy stops counting it
    overstay: bool = False
    overstay_at: datetime | None = None  # an open visit's: when it passes max_stay_seconds

    @property
    def duration_seconds(self) -> float | None:
        if self.entered_at and self.exited_at:
            return (self.exited_at - self.entered_at).total_seconds()
        return None

    def key(self) -> tuple:
        """What the visit is, ids aside: for comparing two derivations."""
        return (
            self.state,
            self.entered_at,
            self.exited_at,
            self.ends_at,
            self.entry.detection_id if self.entry else None,
            self.exit.detection_id if self.exit else None,
            self.overstay,
        )


def walk(reads: Iterable[Read], params: Params, now: datetime) -> list[Visit]:
    """The visits `reads` make at a site, ordered by their anchor read.
    Reads without a plate, or at a camera the site does not have, take no part."""
    absent = timedelta(seconds=params.absent_after_seconds)
    repeat = timedelta(seconds=params.repeat_seconds)
    ordered = sorted((r for r in reads if r.vehicle and r.camera in params.roles), key=lambda r: r.order)
    open_visits: dict[str, Visit] = {}
    last_at_camera: dict[tuple[str, str], datetime] = {}
    last_in_direction: dict[tuple[str, str], datetime] = {}
    visits: list[Visit] = []

    def note(vehicle: str, read: Read, direction: str):
        last_at_camera[vehicle, read.camera] = read.at
        last_in_direction[vehicle, direction] = read.at

    def is_repeat(vehicle: str, read: Read, direction: str) -> bool:
        for earlier in (last_at_camera.get((vehicle, read.camera)), last_in_direction.get((vehicle, direction))):
            if earlier is not None and read.at - earlier <= repeat:
                return True
        return False

    def still_open(vehicle: str, at: datetime) -> Visit | None:
        """The vehicle's open visit at `at`; one past its absence limit expires here."""
        visit = open_visits.get(vehicle)
        if visit is not None and at > visit.entered_at + absent:
            _end(visit, EXPIRED, ends_at=visit.entered_at + absent)
            del open_visits[vehicle]
            return None
        return visit

    for read in ordered:
        vehicle = read.vehicle
        current = still_open(vehicle, read.at)
        # Rule 2, needed by rule 1's "same direction".
        role = params.roles[read.camera]
        if role == ENTRY:
            direction = IN
        elif role == EXIT:
            direction = OUT
        else:
            direction = read.direction or (OUT if current is not None else IN)
        # Rule 1.
        repeated = is_repeat(vehicle, read, direction)
        note(vehicle, read, direction)
        if repeated:
            continue
        if direction == IN:
            # Rule 3.
            if current is not None:
                _end(current, EXIT_MISSED, ends_at=read.at)
            visit = Visit(vehicle, read.plate, anchor=read, entry=read, entered_at=read.at, ends_at=read.at + absent)
            open_visits[vehicle] = visit
            visits.append(visit)
            continue
        # Rules 4 and 5.
        target = current
        if target is None and params.max_edits > 0:
            candidates = [
                other
                for other in _near(vehicle, list(open_visits), params.max_edits)
                if still_open(other, read.at) is not None
            ]
            if len(candidates) == 1:
                target = open_visits[candidates[0]]
        if target is None:
            visits.append(
                Visit(vehicle, read.plate, anchor=read, state=ENTRY_MISSED, exit=read, exited_at=read.at, ends_at=None)
            )
            continue
        target.exit = read
        target.exited_at = read.at
        _end(target, CLOSED, ends_at=read.at)
        del open_visits[target.vehicle]
        if target.vehicle != vehicle:
            note(target.vehicle, read, direction)
    for visit in open_visits.values():
        if now > visit.entered_at + absent:
            _end(visit, EXPIRED, ends_at=visit.entered_at + absent)
    for visit in visits:
        _mark_overstay(visit, params.max_stay_seconds, now)
    visits.sort(key=lambda visit: visit.anchor.order)
    return visits


def _near(vehicle: str, others: list[str], max_edits: int) -> list[str]:
    return [
        other
        for other in others
        if other != vehicle and Levenshtein.distance(vehicle, other, score_cutoff=max_edits) <= max_edits
    ]


def _end(visit: Visit, state: str, *, ends_at: datetime):
    visit.state = state
    visit.ends_at = ends_at


def _mark_overstay(visit: Visit, max_stay_seconds: int | None, now: datetime):
    visit.overstay_at = None
    if max_stay_seconds is None or visit.entered_at is None:
        visit.overstay = False
        return
    limit = visit.entered_at + timedelta(seconds=max_stay_seconds)
    if visit.state == OPEN:
        visit.overstay = now > limit
        visit.overstay_at = limit
    else:
        visit.overstay = visit.ends_at > limit
