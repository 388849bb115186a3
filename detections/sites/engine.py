"""The visit engine: a follower of the event log (`core.followers`, named
"visits") that keeps every active site's visits what the walk
(`sites.walk`) gives over its reads, whatever order they arrived in.

A step takes the events after its cursor (new detections, deletions,
corrections) and, for each site a read belongs to, derives again the affected
stretch of the timeline of its vehicle and of the vehicles within `max_edits`
of it (`rederive`): from a rest point before the read, where none of them has a
visit under way or a read that a later one could repeat, to the present. The
visits it changes, the events they raise and the cursor commit together, so an
engine killed mid-step leaves nothing done twice and nothing lost: the next
step does the same work again.

A site whose revision is ahead of what was derived (new, re-activated, `since`
moved, roles or parameters changed) is derived whole, outside the step, and
swapped in by a step (`derive_pending`); history derived so raises no events.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from rapidfuzz.distance import Levenshtein

from detections.alerts.plates import normalize, within_one_edit
from detections.core import counters, events
from detections.core.followers import Follower, Span
from detections.models import Detection, Event, EventKind, feed_head
from detections.sites import payloads, seen, walk
from detections.sites.models import Site, SiteCamera, Visit, VisitState
from detections.sites.queries import occupancy_now

logger = logging.getLogger(__name__)

# Seqs one step reads at most.
PAGE = 500
# Most vehicles derived together around one read (its vehicle and those within
# max_edits of it, and theirs): a chain of look-alike plates stops here.
MAX_CLUSTER = 50


@dataclass(frozen=True)
class SiteSpec:
    """An active site as one step sees it."""

    id: int
    params: walk.Params
    camera_ids: frozenset[int]
    since: datetime
    revision: int
    derived: bool  # its history is derived at its current revision
    capacity: int | None

    @property
    def cameras(self) -> frozenset[str]:
        return frozenset(self.params.roles)


def active_sites() -> list[SiteSpec]:
    sites = list(Site.objects.filter(active=True))
    roles = defaultdict(dict)
    camera_ids = defaultdict(set)
    for site_id, camera_id, name, role in SiteCamera.objects.filter(site__active=True).values_list(
        "site_id", "camera_id", "camera__name", "role"
    ):
        roles[site_id][name] = role
        camera_ids[site_id].add(camera_id)
    return [
        SiteSpec(
            id=site.pk,
            params=walk.Params(
                roles=roles[site.pk],
                repeat_seconds=site.repeat_seconds,
                absent_after_seconds=site.absent_after_seconds,
                max_edits=site.max_edits,
                max_stay_seconds=site.max_stay_seconds,
            ),
            camera_ids=frozenset(camera_ids[site.pk]),
            since=site.since,
            revision=site.revision,
            derived=site.derived_revision == site.revision,
            capacity=site.capacity,
        )
        for site in sites
    ]


def any_active_site() -> bool:
    return Site.objects.filter(active=True).exists()


def _needs_nothing_up_to(position: int, head: int) -> int:
    # Without an active site no event needs the engine.
    return position if any_active_site() else head


# History is derived when a site is made or changed: a new cursor skips it.
ENGINE = Follower("visits", starts_at_head=True, needs_nothing_up_to=_needs_nothing_up_to)


# --- One step ----------------------------------------------------------------------------


def step(*, wait: bool = False, page: int = PAGE, sites: list[SiteSpec] | None = None) -> bool:
    """One step of the engine; True when more committed events wait. `sites`:
    the active sites as the caller has just read them (else read here)."""
    return ENGINE.step(lambda span: _work(span, page, sites), wait=wait).more


# A seed: a vehicle whose timeline changed at a time.
Seed = tuple[str, datetime]


def _work(span: Span, page: int, sites: list[SiteSpec] | None) -> int:
    upper = min(span.head, span.after + page)
    sites = [site for site in (active_sites() if sites is None else sites) if site.derived]
    if not sites:
        return upper
    logged = list(span.events(upper).filter(kind__in=list(_READ_KINDS)))
    BOOK.bring_to(span.after, frozenset().union(*(site.cameras for site in sites)))
    BOOK.note(logged, upto=upper)
    seeds = seeds_of(logged, sites)
    now = timezone.now()
    changed = []
    for site in sites:
        if seeds.get(site.id):
            changes = apply(site, seeds[site.id], now=now, raise_events=True, book=BOOK)
            if changes:
                changed.append((site, changes))
    log_changes(changed, now)
    return upper


# The plates read at the sites' cameras, as far as this process's steps know.
BOOK = seen.PlateBook()


def seeds_of(logged, sites: list[SiteSpec]) -> dict[int, list[Seed]]:
    """Which vehicles' timelines the events touch, and when, at each site."""
    by_camera = defaultdict(list)
    for site in sites:
        for camera in site.cameras:
            by_camera[camera].append(site)
    seeds: dict[int, list[Seed]] = defaultdict(list)
    deleted = []
    logged = [event for event in logged if event.camera in by_camera]
    # A correction's event names the read, not its time: the read says when it was.
    corrected = [event.detection_id for event in logged if event.kind == EventKind.DETECTION_UPDATED]
    read_at = dict(Detection.objects.filter(pk__in=corrected).values_list("pk", "detected_at")) if corrected else {}
    for event in logged:
        payload = event.payload
        covering = by_camera[event.camera]
        if event.kind == EventKind.DELETION:
            if event.to_webhooks:  # a retention purge derives nothing again (protocol.md)
                deleted.append(event.detection_id)
            continue
        if event.kind == EventKind.DETECTION_UPDATED:
            at = read_at.get(event.detection_id)
            if at is None:
                continue  # deleted since: its deletion's event derives its visit again
            # Both vehicles: the read leaves the old one's timeline for the new one's.
            plates = [payload.get("plate") or "", payload.get("previous_plate") or ""]
        else:
            at = datetime.fromisoformat(payload["time"].replace("Z", "+00:00"))
            plates = [payload.get("plate") or ""]
        for site in covering:
            if at < site.since:
                continue
            for plate in plates:
                if normalize(plate):
                    seeds[site.id].append((normalize(plate), at))
    if deleted:
        # A deleted read's plate is gone with it: the visits that used it say whose it was.
        site_ids = [site.id for site in sites]
        for site_id, vehicle, anchor_at in (
            Visit.objects.filter(site_id__in=site_ids)
            .filter(_uses(deleted))
            .values_list("site_id", "vehicle", "anchor_at")
        ):
            seeds[site_id].append((vehicle, anchor_at))
    return seeds


def _uses(detection_ids):
    return Q(entry_detection_id__in=detection_ids) | Q(exit_detection_id__in=detection_ids)


# --- Deriving a stretch again ------------------------------------------------------------


@dataclass
class Change:
    event: str  # opened, closed, changed, removed
    visit: Visit


def apply(
    site: SiteSpec, seeds: list[Seed], *, now: datetime, raise_events: bool, book: seen.PlateBook | None = None
) -> list[Change]:
    """Derive again the stretches the seeds touch and store the difference,
    inside the step's transaction; the changes, whose events (`raise_events`)
    the step logs for all its sites at its end (`log_changes`).

    The stretches of one step are derived together: one query for their
    reads, one for their stored visits, one write for what changed (a step
    at a busy site holds a few reads of different vehicles). With a `book`
    brought up to the step, look-alikes are looked for there first."""
    stretches = _stretches(site, seeds, book)
    return rederive(site, stretches, now=now, raise_events=raise_events)


def _stretches(site: SiteSpec, seeds: list[Seed], book: seen.PlateBook | None) -> list[tuple[set[str], datetime]]:
    """The seeds grouped by cluster of look-alike vehicles, each with its earliest time."""
    neighbours = Neighbours(site, {vehicle for vehicle, _ in seeds}, book)
    stretches: list[tuple[set[str], datetime]] = []
    for vehicle, at in sorted(seeds, key=lambda seed: seed[1]):
        for cluster, _ in stretches:
            if vehicle in cluster:
                break
        else:
            stretches.append((cluster_of(vehicle, neighbours), at))
    # Two seeds' clusters may meet: merge them.
    merged: list[tuple[set[str], datetime]] = []
    for cluster, start in stretches:
        for index, (other, other_start) in enumerate(merged):
            if other & cluster:
                merged[index] = (other | cluster, min(start, other_start))
                break
        else:
            merged.append((cluster, start))
    return merged


def cluster_of(vehicle: str, neighbours: "Neighbours") -> set[str]:
    """The vehicle and every vehicle read at the site within max_edits of it,
    and theirs in turn: the walk pairs an exit only among them (rule 5)."""
    cluster, todo = {vehicle}, [vehicle]
    while todo and len(cluster) < MAX_CLUSTER:
        for near in sorted(neighbours.of(todo.pop())):
            if near not in cluster and len(cluster) < MAX_CLUSTER:
                cluster.add(near)
                todo.append(near)
    return cluster


class Neighbours:
    """The vehicles read at a site within max_edits of a vehicle: those of a
    step's seed vehicles found together in one query, any other's on demand;
    with a book, only those the book finds, and none when it finds none."""

    def __init__(self, site: SiteSpec, vehicles: set[str], book: seen.PlateBook | None = None):
        self.site = site
        self.book = book
        self.found: dict[str, set[str]] = {}
        self.known: list[str] | None = None
        self._find(vehicles)

    def of(self, vehicle: str) -> set[str]:
        if vehicle not in self.found:
            self._find({vehicle})
        return self.found[vehicle]

    def _find(self, vehicles: set[str]):
        edits = self.site.params.max_edits
        if edits == 0:
            self.found.update((vehicle, set()) for vehicle in vehicles)
        elif edits == 1:
            # The few hundred spellings one edit away, looked up by the plate index.
            spellings = {vehicle: within_one_edit(vehicle) - {vehicle} for vehicle in vehicles}
            if self.book is not None:
                spellings = {vehicle: self.book.near(self.site.cameras, near) for vehicle, near in spellings.items()}
            wanted = set().union(*spellings.values())
            read = (
                set(
                    Detection.objects.filter(camera_id__in=self.site.camera_ids, plate_normalized__in=wanted)
                    .values_list("plate_normalized", flat=True)
                    .order_by()
                    .distinct()
                )
                if wanted
                else set()
            )
            for vehicle, near in spellings.items():
                self.found[vehicle] = (read & near) - {vehicle}
        else:
            # Two edits are far too many spellings: the site's vehicles, measured.
            if self.known is None:
                self.known = list(
                    Visit.objects.filter(site_id=self.site.id).values_list("vehicle", flat=True).order_by().distinct()
                )
            for vehicle in vehicles:
                self.found[vehicle] = {
                    other
                    for other in self.known
                    if other != vehicle and Levenshtein.distance(vehicle, other, score_cutoff=edits) <= edits
                }


def rest_point(site: SiteSpec, cluster: set[str], start: datetime, window: "Window") -> tuple[datetime, bool]:
    """The latest time at or before `start` where the walk over the cluster
    holds nothing: no visit of theirs under way and no read a later one could
    repeat. Walking their reads from there gives what walking all of them does.
    None when the window does not reach back far enough to tell."""
    repeat = timedelta(seconds=site.params.repeat_seconds)
    absent = timedelta(seconds=site.params.absent_after_seconds)
    while True:
        # A visit under way at `start` entered at most absent_after_seconds before
        # it (the walk ends every kind by then): the window must hold those.
        if start - absent - repeat < window.since:
            return start, False
        earliest = start
        live = [
            visit.entered_at
            for visit in window.visits
            if visit.vehicle in cluster
            and visit.entered_at is not None
            and visit.entered_at < start
            and visit.ends_at is not None
            and visit.ends_at >= start
        ]
        if live:
            earliest = min(earliest, *live)
        recent = [
            read.at for read in window.reads if read.vehicle in cluster and earliest - repeat <= read.at < earliest
        ]
        if recent:
            earliest = min(earliest, *recent)
        if earliest == start:
            return start, True
        start = earliest


@dataclass
class Window:
    """The reads of some vehicles at a site since a time, and their stored
    visits anchored since then or at one of those reads (locked)."""

    since: datetime
    reads: list[walk.Read]
    visits: list[Visit]


def _window(site: SiteSpec, vehicles: set[str], since: datetime) -> Window:
    reads = reads_for_walk(
        Detection.objects.filter(
            camera_id__in=site.camera_ids, plate_normalized__in=vehicles, detected_at__gte=since
        ).order_by()
    )
    visits = list(
        Visit.objects.select_for_update()
        .filter(
            Q(vehicle__in=vehicles, anchor_at__gte=since)
            | Q(anchor_detection_id__in=[read.detection_id for read in reads]),
            site_id=site.id,
        )
        .order_by()
    )
    return Window(since, reads, visits)


def reads_for_walk(queryset) -> list[walk.Read]:
    return [
        walk.Read(
            detection_id=pk,
            at=at,
            camera=camera,
            tracking_id=tracking_id,
            plate=plate,
            vehicle=vehicle,
            direction=direction,
            vehicle_type=vehicle_type,
        )
        for pk, at, camera, tracking_id, plate, vehicle, direction, vehicle_type in queryset.values_list(
            "pk",
            "detected_at",
            "camera__name",
            "tracking_id",
            "plate",
            "plate_normalized",
            "direction",
            "vehicle_type",
        ).iterator(chunk_size=2000)
    ]


def rederive(
    site: SiteSpec, stretches: list[tuple[set[str], datetime]], *, now: datetime, raise_events: bool
) -> list[Change]:
    """Derive the stretches again: each cluster's reads from its rest point,
    and its stored visits made what the walk gives."""
    if not stretches:
        return []
    vehicles = set().union(*(cluster for cluster, _ in stretches))
    slack = timedelta(seconds=site.params.absent_after_seconds + site.params.repeat_seconds)
    # Twice the slack: a rest point is mostly the entry of a visit under way,
    # and the window must reach a visit's length before that to tell.
    since = min(start for _, start in stretches) - 2 * slack
    while True:
        window = _window(site, vehicles, since)
        rests = [rest_point(site, cluster, start, window) for cluster, start in stretches]
        if all(complete for _, complete in rests):
            break
        # A rest point further back than the window reaches: widen it.
        since = min(rest for rest, complete in rests if not complete) - slack
    plans = []
    for (cluster, _), (rest, _) in zip(stretches, rests, strict=True):
        start = max(rest, site.since)
        reads = [read for read in window.reads if read.vehicle in cluster and read.at >= start]
        derived = walk.walk(reads, site.params, now)
        walked = {read.detection_id for read in reads}
        # With the cluster's visits, those anchored at one of its reads under
        # another plate: a read corrected into the cluster keeps its visit (and
        # its id) if it still anchors one here, and the visit goes if it does not.
        stored = [
            visit
            for visit in window.visits
            if (visit.vehicle in cluster and visit.anchor_at >= start) or visit.anchor_detection_id in walked
        ]
        plans.append(
            plan(site.id, derived, _without_moved_away(stored, walked, cluster), now=now, history=not raise_events)
        )
    return write(site.id, plans)


def _without_moved_away(stored: list[Visit], walked: set[int], cluster: set[str]) -> list[Visit]:
    """The stored visits less those whose anchor read was corrected to a
    vehicle outside the cluster: that vehicle's timeline takes them over (the
    correction derives it too), so they are not this cluster's to remove."""
    elsewhere = [visit.anchor_detection_id for visit in stored if visit.anchor_detection_id not in walked]
    if not elsewhere:
        return stored
    moved = set(
        Detection.objects.filter(pk__in=elsewhere)
        .exclude(plate_normalized="")
        .exclude(plate_normalized__in=cluster)
        .values_list("pk", flat=True)
    )
    return [visit for visit in stored if visit.anchor_detection_id not in moved]


# The fields of a stored visit the walk decides.
DERIVED_FIELDS = [
    "vehicle",
    "plate",
    "state",
    "anchor_at",
    "entered_at",
    "exited_at",
    "ends_at",
    "duration_seconds",
    "entry_detection_id",
    "exit_detection_id",
    "entry_camera",
    "exit_camera",
    "vehicle_type",
    "overstay",
    "overstay_at",
]


def _fields(visit: walk.Visit) -> dict:
    return {
        "vehicle": visit.vehicle,
        "plate": visit.plate,
        "state": visit.state,
        "anchor_at": visit.anchor.at,
        "entered_at": visit.entered_at,
        "exited_at": visit.exited_at,
        "ends_at": visit.ends_at,
        "duration_seconds": visit.duration_seconds,
        "entry_detection_id": visit.entry.detection_id if visit.entry else None,
        "exit_detection_id": visit.exit.detection_id if visit.exit else None,
        "entry_camera": visit.entry.camera if visit.entry else "",
        "exit_camera": visit.exit.camera if visit.exit else "",
        "vehicle_type": visit.anchor.vehicle_type,
        "overstay": visit.overstay,
        "overstay_at": visit.overstay_at if visit.state == walk.OPEN else None,
    }


@dataclass
class Plan:
    """What makes the stored visits of a stretch what was derived."""

    changes: list[Change]
    new: list[Visit]
    changed: list[Visit]
    gone: list[Visit]


def plan(site_id: int, derived: list[walk.Visit], stored: list[Visit], *, now: datetime, history: bool) -> Plan:
    """A visit keeps its row (and id) while it keeps its anchor read; the
    changes, in anchor order."""
    by_anchor = {visit.anchor_detection_id: visit for visit in stored}
    changes, new, changed = [], [], []
    for visit in derived:
        fields = _fields(visit)
        row = by_anchor.pop(visit.anchor.detection_id, None)
        if row is None:
            row = Visit(site_id=site_id, anchor_detection_id=visit.anchor.detection_id, created_at=now, updated_at=now)
            for name, value in fields.items():
                setattr(row, name, value)
            # An overstay is raised for a visit open past its limit, once; never
            # for derived history, nor for a visit that ended before it was known.
            row.overstay_raised = history or row.state != VisitState.OPEN
            new.append(row)
            changes.append(Change("opened" if row.state == VisitState.OPEN else "closed", row))
            continue
        before = {name: getattr(row, name) for name in DERIVED_FIELDS}
        if before == fields:
            continue
        was_open = row.state == VisitState.OPEN
        for name, value in fields.items():
            setattr(row, name, value)
        if row.state != VisitState.OPEN and not row.overstay_raised:
            row.overstay_raised = True  # ended before its overstay was raised: never now
        row.updated_at = now
        changed.append(row)
        changes.append(Change("closed" if was_open and row.state != VisitState.OPEN else "changed", row))
    gone = sorted(by_anchor.values(), key=lambda row: (row.anchor_at, row.pk), reverse=True)
    changes.extend(Change("removed", row) for row in gone)
    return Plan(changes, new, changed, gone)


def write(site_id: int, plans: list[Plan]) -> list[Change]:
    """The plans' rows written together; their changes, plan by plan."""
    gone = [row for each in plans for row in each.gone]
    changed = [row for each in plans for row in each.changed]
    new = [row for each in plans for row in each.new]
    if gone:
        Visit.objects.filter(pk__in=[row.pk for row in gone]).delete()
    if changed:
        # One INSERT ... ON DUPLICATE KEY UPDATE of the locked rows, by id: a
        # bulk_update's CASE per field costs far more for the few rows of a step.
        # MySQL's upsert takes no conflict target; SQLite's (the demo's) needs one.
        by_id = [Visit._meta.pk.name] if connection.features.supports_update_conflicts_with_target else None
        Visit.objects.bulk_create(
            changed,
            update_conflicts=True,
            unique_fields=by_id,
            update_fields=[*DERIVED_FIELDS, "overstay_raised", "updated_at"],
        )
    if new:
        Visit.objects.bulk_create(new)
        if any(row.pk is None for row in new):
            # MySQL does not say which ids it gave: read them back by anchor.
            ids = dict(
                Visit.objects.filter(
                    site_id=site_id, anchor_detection_id__in=[row.anchor_detection_id for row in new]
                ).values_list("anchor_detection_id", "pk")
            )
            for row in new:
                row.pk = ids[row.anchor_detection_id]
    return [change for each in plans for change in each.changes]


def store(
    site_id: int, derived: list[walk.Visit], stored: list[Visit], *, now: datetime, history: bool
) -> list[Change]:
    """Make the stored visits what was derived; the changes, in anchor order."""
    return write(site_id, [plan(site_id, derived, stored, now=now, history=history)])


# --- Events ------------------------------------------------------------------------------


def log_changes(changed: list[tuple[SiteSpec, list[Change]]], now: datetime):
    """The events of a step's changes at each site, and each site's capacity
    event if it crossed: numbered together, last in the step, so the feed's
    row (which every write to the log locks) is held for the commit only."""
    batches = []
    for site, changes in changed:
        occupancy = occupancy_now(site.id, now)
        logged = [(change.event, change.visit) for change in changes]
        crossing = capacity_crossing(site.id, occupancy) if site.capacity is not None else None
        batches.append((logged, occupancy, crossing))
    log_event_batches(batches)


def capacity_crossing(site_id: int, occupancy: int):
    """The site, locked, with the capacity event its occupancy calls for (or None)."""
    site = Site.objects.select_for_update().get(pk=site_id)
    if site.capacity is None:
        return None
    if not site.full and occupancy >= site.capacity:
        site.full = True
    elif site.full and occupancy <= site.capacity - 1:
        site.full = False
    else:
        return None
    Site.objects.filter(pk=site.pk).update(full=site.full)
    return site, ("full" if site.full else "available"), occupancy


def log_visit_events(logged: list[tuple[str, Visit]], occupancy: int, *, site_row=None):
    """Event rows for visit events (and one site event), numbered last in the
    transaction, published after its commit."""
    log_event_batches([(logged, occupancy, site_row)])


def log_event_batches(batches: list[tuple[list[tuple[str, Visit]], int, tuple | None]]):
    """`log_visit_events` for several sites' (logged, occupancy, site_row) at once."""
    count = sum(len(logged) + (1 if site_row else 0) for logged, _, site_row in batches)
    if not count:
        return
    seqs = iter(counters.take_seqs(count))
    rows = []
    for logged, occupancy, site_row in batches:
        for name, visit in logged:
            seq = next(seqs)
            rows.append(
                Event(
                    seq=seq,
                    kind=EventKind.VISIT,
                    detection_id=visit.anchor_detection_id,
                    camera=visit.entry_camera or visit.exit_camera,
                    vehicle_type=visit.vehicle_type,
                    payload=payloads.visit_payload(seq, name, visit, occupancy),
                )
            )
        if site_row:
            site, name, site_occupancy = site_row
            seq = next(seqs)
            rows.append(
                Event(
                    seq=seq,
                    kind=EventKind.SITE,
                    detection_id=0,
                    camera="",
                    vehicle_type="",
                    payload=payloads.site_payload(seq, name, site, site_occupancy),
                )
            )
    Event.objects.bulk_create(rows)
    events.events_logged.send(sender=Visit, events=rows)


# --- Deriving a site's history -----------------------------------------------------------


def derive_pending(sites: list[SiteSpec] | None = None) -> bool:
    """Derive the history of one site whose revision is ahead of what was
    derived, and swap it in; True if there was one."""
    pending = [site for site in (active_sites() if sites is None else sites) if not site.derived]
    if not pending:
        return False
    derive_site(pending[0])
    return True


def derive_site(site: SiteSpec):
    # Every read committed up to this head is visible to the read below; those
    # after it are derived again once the result is in (`_swap`).
    head = feed_head()
    now = timezone.now()
    derived = walk.walk(
        reads_for_walk(
            Detection.objects.filter(camera_id__in=site.camera_ids, detected_at__gte=site.since).exclude(
                plate_normalized=""
            )
        ),
        site.params,
        now,
    )
    with transaction.atomic():
        _swap(site, derived, head, now, position=ENGINE.hold())


def _swap(site: SiteSpec, derived: list[walk.Visit], head: int, now: datetime, *, position: int):
    """With the engine's cursor held: the derived history in place of the
    site's visits, unless the site changed meanwhile; then the reads the
    engine handled after `head` derived again over it. Raises no events."""
    row = Site.objects.select_for_update().filter(pk=site.id, revision=site.revision, active=True).first()
    if row is None:
        return  # changed meanwhile: derived again at its new revision
    stored = list(Visit.objects.select_for_update().filter(site_id=site.id))
    # A visit whose reads were purged keeps its times (retention derives nothing
    # again): it stays out of the swap unless `since` now leaves it out.
    anchors = [visit.anchor_detection_id for visit in stored]
    present = set()
    for index in range(0, len(anchors), 5000):
        present.update(Detection.objects.filter(pk__in=anchors[index : index + 5000]).values_list("pk", flat=True))
    stored = [v for v in stored if v.anchor_detection_id in present or v.anchor_at < site.since]
    store(site.id, derived, stored, now=now, history=True)
    Site.objects.filter(pk=site.id).update(derived_revision=site.revision)
    if position > head:
        later = Event.objects.filter(seq__gt=head, seq__lte=position, kind__in=list(_READ_KINDS))
        seeds = seeds_of(later, [site]).get(site.id)
        if seeds:
            apply(site, seeds, now=now, raise_events=False)


_READ_KINDS = {EventKind.NEW_DETECTION, EventKind.DELETION, EventKind.DETECTION_UPDATED}
