"""The journey engine: a follower of the event log (`detections.core.followers`,
named "journeys") that keeps the plate reads, their transitions and the
routes' journeys in step with the detections.

A step, in one transaction with the cursor that says it is done:

    the events after the cursor -> the reads they add, delete or correct
    (PlateRead) -> each changed vehicle's transitions from the change on ->
    each active route's journeys around its changed reads (`pairing.replay`) ->
    `journey` events for what changed (completed, speeding, removed)

Journeys are a function of the reads: from a changed read's time on, a
route's pairing is run again over the reads at its two cameras, handed what
the end reads before it left (the start reads they took, each vehicle's last
end read), until it meets the stored pairing again (`pairing.replay`). A
late, deleted or corrected read therefore changes exactly what the rule says
it changes, misread pairings with edit neighbours included, whatever order
the reads arrived in, and costs the few windows around it.

A route that is new or edited (its `revision` ahead of `derived_revision`)
is derived again whole, holding the cursor, without events. Purges
(deletions that tell no webhook) change nothing here: journeys and reads
are kept for JOURNEY_RETENTION_DAYS on their own.
"""

import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import F, Max, Q

from detections.alerts.plates import normalize
from detections.core import counters
from detections.core.events import events_logged
from detections.core.followers import Follower, Span
from detections.journeys import pairing, transitions
from detections.journeys.models import Journey, PlateRead, Route
from detections.journeys.queries import journey_json
from detections.models import Camera, Detection, Event, EventKind

logger = logging.getLogger(__name__)

# Seqs one step reads at most.
PAGE = 500
_FOLLOWED = [EventKind.NEW_DETECTION, EventKind.DELETION, EventKind.DETECTION_UPDATED]


@dataclass(frozen=True)
class Change:
    """A read added, removed or moved to another vehicle."""

    vehicle: str
    camera_id: int
    at: datetime


@dataclass
class Output:
    """The journey events a step makes, logged at its end."""

    events: list[tuple[str, Journey, Route]] = field(default_factory=list)


def _read_of(row: PlateRead) -> pairing.Read:
    return pairing.Read(
        row.detection_id, row.vehicle, row.detected_at, row.tracking_id, row.camera_id, row.plate, row.vehicle_type
    )


# --- The reads ---------------------------------------------------------------------------


class Cameras:
    """Camera ids by name, read once per step."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def id_of(self, name: str) -> int | None:
        if name not in self.ids:
            found = Camera.objects.filter(name=name).values_list("pk", flat=True).first()
            if found is None:
                return None
            self.ids[name] = found
        return self.ids[name]


def apply_events(events: Iterable[Event]) -> list[Change]:
    """Make the reads say what the events say; the changes, in event order.
    An event whose change is made already (history taken at the start) or
    whose read never had a plate changes nothing."""
    cameras = Cameras()
    pending: dict[int, PlateRead] = {}  # inserted at the end, unless deleted first
    changes: list[Change] = []
    for event in events:
        payload = event.payload
        if event.kind == EventKind.NEW_DETECTION:
            vehicle = normalize(payload.get("plate") or "")
            camera_id = cameras.id_of(event.camera)
            if not vehicle or camera_id is None:
                continue
            row = PlateRead(
                detection_id=event.detection_id,
                vehicle=vehicle,
                plate=payload["plate"],
                camera_id=camera_id,
                vehicle_type=event.vehicle_type,
                tracking_id=payload["tracking_id"],
                detected_at=datetime.fromisoformat(payload["time"]),
            )
            pending[row.detection_id] = row
            changes.append(Change(vehicle, camera_id, row.detected_at))
        elif event.kind == EventKind.DELETION:
            if not event.to_webhooks:
                continue  # a retention purge: journeys are not derived again
            row = pending.pop(event.detection_id, None) or PlateRead.objects.filter(pk=event.detection_id).first()
            if row is None:
                continue
            PlateRead.objects.filter(pk=row.detection_id).delete()
            changes.append(Change(row.vehicle, row.camera_id, row.detected_at))
        elif event.kind == EventKind.DETECTION_UPDATED:
            # A correction of a read's plate: {"id", "camera", "plate", "previous_plate", ...}.
            changes.extend(_corrected(event, pending))
    _insert(pending.values())
    return changes


def _corrected(event: Event, pending: dict[int, PlateRead]) -> list[Change]:
    """A read whose plate was corrected: it leaves its old vehicle for the new one."""
    _insert(pending.values())
    pending.clear()
    vehicle = normalize(event.payload.get("plate") or "")
    row = PlateRead.objects.filter(pk=event.detection_id).first()
    if row is None:
        detection = Detection.objects.filter(pk=event.detection_id).first()
        if detection is None or not vehicle:
            return []
        row = PlateRead.objects.create(
            detection_id=detection.pk,
            vehicle=vehicle,
            plate=event.payload["plate"],
            camera_id=detection.camera_id,
            vehicle_type=detection.vehicle_type,
            tracking_id=detection.tracking_id,
            detected_at=detection.detected_at,
        )
        return [Change(vehicle, row.camera_id, row.detected_at)]
    old = Change(row.vehicle, row.camera_id, row.detected_at)
    if not vehicle:
        row.delete()
        return [old]
    if vehicle == row.vehicle and event.payload["plate"] == row.plate:
        return []
    PlateRead.objects.filter(pk=row.pk).update(vehicle=vehicle, plate=event.payload["plate"])
    return [old, Change(vehicle, row.camera_id, row.detected_at)]


def _insert(rows: Iterable[PlateRead]):
    rows = list(rows)
    if rows:
        # ignore_conflicts: a read the history at the start took already.
        PlateRead.objects.bulk_create(rows, ignore_conflicts=True)


# --- Transitions ---------------------------------------------------------------------------


def derive_transitions(changes: Iterable[Change]):
    """Each changed vehicle's transitions, from its earliest change on: the
    reads of every changed vehicle from the earliest change on read at once,
    and the few anchors before that in one more query."""
    earliest: dict[str, datetime] = {}
    for change in changes:
        if change.vehicle not in earliest or change.at < earliest[change.vehicle]:
            earliest[change.vehicle] = change.at
    if not earliest:
        return
    floor = min(earliest.values()) - transitions.REPEAT
    rows = defaultdict(list)
    for values in (
        PlateRead.objects.filter(vehicle__in=earliest, detected_at__gte=floor)
        .order_by(*_READ_ORDER)
        .values_list(*_STATE_FIELDS)
    ):
        rows[values[1]].append(values)
    anchors = {}
    needing = [
        vehicle
        for vehicle, at in earliest.items()
        if not any(not values[5] for values in rows[vehicle] if values[2] < at)
    ]
    if needing:
        anchors = _anchors_before(needing, floor)
    changed = []
    for vehicle, at in earliest.items():
        reads = rows[vehicle]
        earlier = [values for values in reads if values[2] < at]
        later = [values for values in reads if values[2] >= at]
        if not later:
            continue
        anchor = next((values for values in reversed(earlier) if not values[5]), None) or anchors.get(vehicle)
        found = transitions.derive(
            [_read_of_values(values) for values in later],
            earlier=[_read_of_values(values) for values in earlier if values[2] >= at - transitions.REPEAT],
            anchor=_read_of_values(anchor) if anchor else None,
        )
        for values in later:
            transition = found[values[0]]
            now = (transition.repeat, transition.from_camera_id, transition.gap_seconds)
            if tuple(values[5:8]) != now:
                changed.append((*now, values[0]))
    _update_transitions(changed)


# What the transitions are derived from, as value tuples: (detection_id,
# vehicle, detected_at, tracking_id, camera_id, repeat, from_camera_id, gap_seconds).
_STATE_FIELDS = ("detection_id", "vehicle", "detected_at", "tracking_id", "camera_id", "repeat", "from_camera_id")
_STATE_FIELDS += ("gap_seconds",)
_READ_ORDER = ("detected_at", "tracking_id", "camera_id")


def _read_of_values(values) -> pairing.Read:
    return pairing.Read(values[0], values[1], values[2], values[3], values[4])


def _anchors_before(vehicles: list[str], floor: datetime) -> dict:
    """Each vehicle's last read before `floor` that is not a repeat."""
    latest = (
        PlateRead.objects.filter(vehicle__in=vehicles, detected_at__lt=floor, repeat=False)
        .values("vehicle")
        .annotate(last=Max("detected_at"))
        .values_list("vehicle", "last")
    )
    wanted = dict(latest)
    if not wanted:
        return {}
    found = {}
    for values in (
        PlateRead.objects.filter(vehicle__in=wanted, detected_at__in=set(wanted.values()), repeat=False)
        .order_by(*_READ_ORDER)
        .values_list(*_STATE_FIELDS)
    ):
        if values[2] == wanted[values[1]]:
            found[values[1]] = values  # the last in read order, of those at that time
    return found


def _update_transitions(changed: list[tuple]):
    """Write (repeat, from_camera_id, gap_seconds, detection_id) rows."""
    if not changed:
        return
    table = connection.ops.quote_name(PlateRead._meta.db_table)
    repeat = connection.ops.quote_name("repeat")
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {repeat} = %s, from_camera_id = %s, gap_seconds = %s WHERE detection_id = %s",
            changed,
        )


def derive_all_transitions(chunk: int = 5000):
    """Every read's transition, vehicle by vehicle (the history at the start)."""
    vehicles = PlateRead.objects.order_by("vehicle").values_list("vehicle", flat=True).distinct()
    batch = []
    for vehicle in vehicles.iterator(chunk_size=chunk):
        batch.append(vehicle)
        if len(batch) == chunk:
            _derive_vehicles(batch)
            batch = []
    _derive_vehicles(batch)


def _derive_vehicles(vehicles: list[str]):
    rows = defaultdict(list)
    for row in PlateRead.objects.filter(vehicle__in=vehicles).order_by("vehicle", *_READ_ORDER):
        rows[row.vehicle].append(row)
    changed = []
    for reads in rows.values():
        found = transitions.derive([_read_of(row) for row in reads])
        for row in reads:
            transition = found[row.detection_id]
            row.repeat, row.from_camera_id, row.gap_seconds = (
                transition.repeat,
                transition.from_camera_id,
                transition.gap_seconds,
            )
            changed.append(row)
    PlateRead.objects.bulk_update(changed, ["repeat", "from_camera", "gap_seconds"], batch_size=1000)


# --- Journeys --------------------------------------------------------------------------------


def rule_of(route: Route) -> pairing.Rule:
    return pairing.Rule(max_seconds=route.max_seconds, repeat_seconds=route.repeat_seconds)


def derive_route(route: Route):
    """The route's journeys, all paired again, silently (a route new or edited)."""
    starts = _reads_of(route.from_camera_id, [(route.covers_from, None)])
    ends = _reads_of(route.to_camera_id, [(route.covers_from, None)])
    pairs = pairing.pair(starts, ends, rule_of(route))
    _store(route, list(Journey.objects.filter(route=route)), pairs, None)


def repair_route(route: Route, changed: list[datetime], output: Output, reads, journeys, newest: datetime | None):
    """Pair the route's journeys again where reads changed at `changed` (times,
    in order) may have changed them: from each change until the new pairing
    meets the stored one (`pairing.replay`), not on to the last read. `reads`:
    the step's reads by camera, `journeys` the route's (TimeRanges); `newest`:
    the latest read at the route's cameras."""
    window = timedelta(seconds=route.max_seconds)
    old, pairs = [], []
    pending = changed
    while pending:
        since, ahead = pending[0], FIRST_READ
        while True:
            until = _read_until(route, since, ahead, newest)
            replayed = _replay(route, since, until, pending, reads, journeys.between(since - window, until))
            if replayed is not None:
                break
            ahead *= 4  # a long chain of pairings moved along: read further
        old += [journey.pk for journey in journeys.between(since, replayed.stop)]
        pairs += replayed.pairs
        pending = [at for at in pending if replayed.stop is not None and at >= replayed.stop]
    _store(route, list(Journey.objects.filter(pk__in=old)) if old else [], pairs, output)


# How far a replay reads at first, in reaches (the longer of a route's
# max_seconds and repeat_seconds): a change is out of reach one reach on, and a
# chain of pairings it moves along most often ends within another.
FIRST_READ = 2


def _read_until(route: Route, since: datetime, reaches: int, newest: datetime | None) -> datetime | None:
    """Where a replay from `since` reads to (None: on to the last read)."""
    until = since + reaches * rule_of(route).reach
    return None if newest is None or until > newest else until


def _replay(route, since, until, changed, reads: dict[int, "TimeRanges"], journeys: list["StoredJourney"]):
    """`pairing.replay` from `since`, with the reads and `journeys` (those ending
    from `max_seconds` before `since`) before `until`."""
    window = timedelta(seconds=route.max_seconds)
    repeat = timedelta(seconds=route.repeat_seconds)
    starts = reads[route.from_camera_id].between(max(since - window, route.covers_from), until)
    state = pairing.State()
    replayed = []
    for read in reads[route.to_camera_id].between(max(since - repeat, route.covers_from), until):
        if read.at < since:
            state.last_end[read.vehicle] = read.at  # in time order: the last is the latest
        else:
            replayed.append(read)
    stored = {}
    for journey in journeys:
        if journey.ended_at < since:
            state.taken.add(journey.from_detection)
        else:
            stored[journey.to_detection] = pairing.Stored(journey.from_detection, journey.started_at)
    return pairing.replay(starts, replayed, rule_of(route), state, stored, changed, until)


Ranges = list[tuple[datetime, datetime | None]]  # [since, until), until None: on to the last


class TimeRanges:
    """Rows by time, read at once for the time ranges a step's replays read
    first (one query, however many ranges) and handed out from memory; a range
    outside them is read alone. Routes share cameras (every ordered pair of
    five cameras is 20 routes on 5), and a step's late reads are many ranges."""

    def __init__(self, wanted: Ranges, load, time_of=lambda read: read.at, rows: list | None = None):
        """`load(ranges)` reads the rows in the ranges; `rows`: those in `wanted`, read already."""
        self.ranges = _merged(wanted)
        self.load, self.time_of = load, time_of
        self.rows: list | None = None
        self.times: list[datetime] = []
        if rows is not None:
            self._keep(rows)

    def between(self, since: datetime, until: datetime | None) -> list:
        """The rows at or after `since` and before `until` (None: on), in time order."""
        if not any(
            low <= since and (high is None or (until is not None and until <= high)) for low, high in self.ranges
        ):
            return sorted(self.load([(since, until)]), key=self.time_of)
        if self.rows is None:
            self._keep(self.load(self.ranges))
        low = bisect_left(self.times, since)
        high = len(self.times) if until is None else bisect_left(self.times, until)
        return self.rows[low:high]

    def _keep(self, rows: list):
        self.rows = sorted(rows, key=self.time_of)
        self.times = [self.time_of(row) for row in self.rows]


def _merged(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for since, until in sorted(ranges, key=lambda bounds: bounds[0]):
        if merged and (merged[-1][1] is None or since <= merged[-1][1]):
            last_since, last_until = merged[-1]
            merged[-1] = (last_since, None if until is None or last_until is None else max(until, last_until))
        else:
            merged.append((since, until))
    return merged


def _within(field_name: str, ranges: Ranges) -> Q:
    within = Q()
    for since, until in ranges:
        within |= Q(**{f"{field_name}__gte": since}) & (Q() if until is None else Q(**{f"{field_name}__lt": until}))
    return within


def _reads_of(camera_id: int, ranges: Ranges) -> list[pairing.Read]:
    """A camera's reads in the time ranges, as tuples: no model instances."""
    fields = ("detection_id", "vehicle", "detected_at", "tracking_id", "camera_id", "plate", "vehicle_type")
    rows = PlateRead.objects.filter(_within("detected_at", ranges), camera_id=camera_id).values_list(*fields)
    return [pairing.Read(*values) for values in rows]


def _store(route: Route, old: list[Journey], pairs: list[pairing.Pair], output: Output | None):
    """Swap the journeys `old` for those of `pairs`: a journey of the same two
    reads keeps its row; the others are removed and made."""
    by_reads = {(journey.from_detection, journey.to_detection): journey for journey in old}
    made, updated = [], []
    for found in pairs:
        journey = _journey(route, found)
        kept = by_reads.pop((found.start.detection_id, found.end.detection_id), None)
        if kept is None:
            made.append(journey)
            continue
        if (kept.plate, kept.vehicle, kept.fuzzy, kept.speed_kmh, kept.speeding) != (
            journey.plate,
            journey.vehicle,
            journey.fuzzy,
            journey.speed_kmh,
            journey.speeding,
        ):
            newly_speeding = journey.speeding and not kept.speeding
            kept.plate, kept.vehicle, kept.fuzzy = journey.plate, journey.vehicle, journey.fuzzy
            kept.speed_kmh, kept.speeding, kept.vehicle_type = journey.speed_kmh, journey.speeding, journey.vehicle_type
            updated.append(kept)
            if newly_speeding and output is not None:
                output.events.append(("speeding", kept, route))
    removed = sorted(by_reads.values(), key=lambda journey: (journey.ended_at, journey.pk))
    if removed:
        Journey.objects.filter(pk__in=[journey.pk for journey in removed]).delete()
    if updated:
        Journey.objects.bulk_update(updated, ["plate", "vehicle", "fuzzy", "speed_kmh", "speeding", "vehicle_type"])
    if made:
        Journey.objects.bulk_create(made)
        if any(journey.pk is None for journey in made):
            ids = dict(
                Journey.objects.filter(route=route, to_detection__in=[j.to_detection for j in made]).values_list(
                    "to_detection", "pk"
                )
            )
            for journey in made:
                journey.pk = ids[journey.to_detection]
    if output is not None:
        output.events.extend(("removed", journey, route) for journey in removed)
        for journey in made:
            output.events.append(("completed", journey, route))
            if journey.speeding:
                output.events.append(("speeding", journey, route))


def _journey(route: Route, found: pairing.Pair) -> Journey:
    seconds = found.seconds
    speed = pairing.speed_kmh(route.distance_m, seconds)
    return Journey(
        route=route,
        plate=found.end.plate,
        vehicle=found.end.vehicle,
        fuzzy=found.fuzzy,
        from_detection=found.start.detection_id,
        to_detection=found.end.detection_id,
        started_at=found.start.at,
        ended_at=found.end.at,
        seconds=seconds,
        speed_kmh=speed,
        # Evidence of nothing (docs/journeys.md), and never on a pairing by edit distance.
        speeding=bool(
            not found.fuzzy and route.speed_limit_kmh and speed is not None and speed > route.speed_limit_kmh
        ),
        vehicle_type=found.end.vehicle_type,
    )


def derive_routes(changes: list[Change], output: Output):
    """Each active, derived route's journeys, paired again where its reads changed."""
    if not changes:
        return
    wanted = []
    for route in Route.objects.filter(active=True).select_related("to_camera"):
        if route.derived_revision != route.revision:
            continue  # derived whole soon, by derive_pending_routes
        ours = [change for change in changes if change.camera_id in (route.from_camera_id, route.to_camera_id)]
        touched = sorted({change.at for change in ours if change.at >= route.covers_from})
        if touched:
            wanted.append((route, touched, any(change.camera_id == route.to_camera_id for change in ours)))
    if not wanted:
        return
    cameras = {camera_id for route, _, _ in wanted for camera_id in (route.from_camera_id, route.to_camera_id)}
    newest = dict(
        PlateRead.objects.filter(camera_id__in=cameras)
        .values("camera_id")
        .annotate(newest=Max("detected_at"))
        .values_list("camera_id", "newest")
    )
    # Start reads after every end read, none changed at the end (the usual case:
    # reads in order) change no journey yet: no end read, old or gone, follows them.
    wanted = [
        (route, touched)
        for route, touched, at_end in wanted
        if at_end or (end := newest.get(route.to_camera_id)) is not None and end >= touched[0]
    ]
    latest = {route.pk: _newest(newest, route) for route, _ in wanted}
    read_ranges, journey_ranges = defaultdict(list), defaultdict(list)
    for route, touched in wanted:
        reach = rule_of(route).reach
        window = timedelta(seconds=route.max_seconds)
        for at in touched:
            # What a replay from `at` reads first (`repair_route`).
            until = _read_until(route, at, FIRST_READ, latest[route.pk])
            for camera_id in (route.from_camera_id, route.to_camera_id):
                read_ranges[camera_id].append((max(at - reach, route.covers_from), until))
            journey_ranges[route.pk].append((at - window, until))
    reads = {camera_id: TimeRanges(ranges, partial(_reads_of, camera_id)) for camera_id, ranges in read_ranges.items()}
    journeys = _journeys_of(journey_ranges)
    for route, touched in wanted:
        repair_route(route, touched, output, reads, journeys[route.pk], latest[route.pk])


class StoredJourney(NamedTuple):
    """What a replay needs of a stored journey (the rows it swaps are read whole)."""

    pk: int
    route_id: int
    from_detection: int
    to_detection: int
    started_at: datetime
    ended_at: datetime


def _journeys_of(wanted: dict[int, Ranges]) -> dict[int, "TimeRanges"]:
    """The routes' journeys ending in the time ranges, read in one query for all of them."""
    merged = {route_id: _merged(ranges) for route_id, ranges in wanted.items()}
    within = Q()
    for route_id, ranges in merged.items():
        within |= Q(route_id=route_id) & _within("ended_at", ranges)
    found = defaultdict(list)
    for journey in _stored(Journey.objects.filter(within)) if merged else []:
        found[journey.route_id].append(journey)

    def load(route_id: int, ranges: Ranges) -> list[StoredJourney]:
        return _stored(Journey.objects.filter(_within("ended_at", ranges), route_id=route_id))

    return {
        route_id: TimeRanges(ranges, partial(load, route_id), lambda journey: journey.ended_at, found[route_id])
        for route_id, ranges in merged.items()
    }


def _stored(journeys) -> list[StoredJourney]:
    return [StoredJourney(*values) for values in journeys.values_list(*StoredJourney._fields)]


def _newest(newest: dict[int, datetime], route: Route) -> datetime | None:
    return max((newest[c] for c in (route.from_camera_id, route.to_camera_id) if c in newest), default=None)


def derive_pending_routes() -> int:
    """Derive whole, without events, every route edited or made since it was
    last derived, holding the cursor (no step runs meanwhile); how many."""
    done = 0
    for pk in Route.objects.exclude(derived_revision=F("revision")).values_list("pk", flat=True):
        with transaction.atomic():
            FOLLOWER.hold()
            route = Route.objects.select_related("to_camera").filter(pk=pk).first()
            if route is None or route.derived_revision == route.revision:
                continue
            if route.active:
                derive_route(route)
            Route.objects.filter(pk=pk).update(derived_revision=route.revision)
            done += 1
    return done


# --- Events ------------------------------------------------------------------------------------


def log_events(output: Output):
    """The step's journey events, numbered after every event so far; the lock
    on the feed row is taken last, held only until the step commits."""
    if not output.events:
        return
    seqs = counters.take_seqs(len(output.events))
    cameras = dict(
        Camera.objects.filter(pk__in={route.to_camera_id for _, _, route in output.events}).values_list("pk", "name")
    )
    rows = []
    for seq, (name, journey, route) in zip(seqs, output.events, strict=True):
        payload = {
            "type": EventKind.JOURNEY.value,
            "seq": seq,
            "event": name,
            "journey": journey_json(journey),
            "route": route.name,
            # Routing, as in the other events: a filtered client follows the end camera and the type.
            "camera": cameras.get(route.to_camera_id, ""),
            "vehicle_type": journey.vehicle_type,
        }
        rows.append(
            Event(
                seq=seq,
                kind=EventKind.JOURNEY.value,
                detection_id=journey.to_detection,
                camera=payload["camera"],
                vehicle_type=journey.vehicle_type,
                payload=payload,
            )
        )
    Event.objects.bulk_create(rows)
    events_logged.send(sender=Event, events=rows)


# --- The follower ------------------------------------------------------------------------------


def take_history():
    """The reads already stored when the engine starts, from the detections
    (the log may have been pruned before the engine ever ran)."""
    table = connection.ops.quote_name(PlateRead._meta.db_table)
    source = connection.ops.quote_name(Detection._meta.db_table)
    ignore = "INSERT IGNORE" if connection.vendor == "mysql" else "INSERT OR IGNORE"
    with connection.cursor() as cursor:
        cursor.execute(
            f"{ignore} INTO {table} (detection_id, vehicle, plate, camera_id, vehicle_type, tracking_id, detected_at,"
            f" {connection.ops.quote_name('repeat')})"
            f" SELECT id, plate_normalized, plate, camera_id, vehicle_type, tracking_id, detected_at, 0"
            f" FROM {source} WHERE plate_normalized <> ''"
        )
    derive_all_transitions()


FOLLOWER = Follower("journeys", starts_at_head=True, on_start=take_history)


def _work(page: int):
    def work(span: Span) -> int:
        upper = min(span.head, span.after + page)
        events = Event.objects.filter(seq__gt=span.after, seq__lte=upper, kind__in=_FOLLOWED).order_by("seq")
        changes = apply_events(events)
        derive_transitions(changes)
        output = Output()
        derive_routes(changes, output)
        log_events(output)
        return upper

    return work


def step(page: int = PAGE, *, wait: bool = False) -> bool:
    """One step of the engine; True when more committed events wait. Another
    process's step in progress is left to it (or waited for, with `wait`)."""
    return FOLLOWER.step(_work(page), wait=wait).more


def catch_up(page: int = PAGE) -> int:
    """Steps until the engine has reached the head, then routes to derive
    whole; how many steps (for tests and the command's --once)."""
    steps = 0
    while True:
        steps += 1
        if not step(page, wait=True):
            break
    derive_pending_routes()
    return steps
