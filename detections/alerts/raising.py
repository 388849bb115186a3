"""Alerts raised by new detections, inside the transaction that stores them.

    match (in memory) -> hold back repeats (cooldown rows, locked) -> store (alerts, events)

`writes.detections_create` calls these in that order for every created
detection, on every ingest path, so an alert commits or rolls back with the
detection that raised it; `writes.detection_correct` for a read whose plate
staff corrected, with `after_correction` in place of `candidates`.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Q

from detections.alerts.config import Rule, Snapshot
from detections.alerts.matching import PlateMatch
from detections.core import counters, events
from detections.models import Alert, AlertCooldown, Detection, Event
from detections.operations import metrics

# The last alert of a cooldown row that has raised none yet.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    """A detection that meets a rule, before its cooldown is checked."""

    rule: Rule
    detection: Detection
    watchlist_name: str = ""
    match: PlateMatch | None = None

    @property
    def cooldown_key(self) -> str:
        # A repeat is the same rule and entry, or the same rule and camera for a rule without a list.
        return f"entry:{self.match.entry.id}" if self.match else f"camera:{self.detection.camera_id}"


def candidates(detections: list[Detection], snapshot: Snapshot, now: datetime) -> list[Candidate]:
    """Every (rule, detection) whose conditions all hold."""
    found = []
    for detection in detections:
        for rule in snapshot.rules:
            if rule.cameras and detection.camera.name not in rule.cameras:
                continue
            if rule.vehicle_types and detection.vehicle_type not in rule.vehicle_types:
                continue
            if rule.min_confidence is not None and (
                detection.confidence is None or detection.confidence < rule.min_confidence
            ):
                continue
            if rule.schedule is not None and not rule.schedule.covers(detection.detected_at):
                continue
            if rule.watchlist_id is None:
                found.append(Candidate(rule, detection))
                continue
            watchlist = snapshot.watchlists.get(rule.watchlist_id)
            if watchlist is None:
                continue  # deleted while the snapshot was read
            name, index = watchlist
            match = index.best_match(detection.plate_normalized, now)
            if match is not None:
                found.append(Candidate(rule, detection, name, match))
    return found


def after_correction(detection: Detection, snapshot: Snapshot, now: datetime) -> list[Candidate]:
    """The candidates of a read whose plate was corrected: the new plate is
    matched against the watch-lists as a new read's would be. Rules without a
    list are left out (what they match is not the plate, and they ran when the
    read was stored), and so is an entry that already raised an alert for this
    read under its rule (a correction to a plate the entry matched already)."""
    with_list = [c for c in candidates([detection], snapshot, now) if c.match is not None]
    if not with_list:
        return []
    raised_before = set(
        Alert.objects.filter(detection_id=detection.pk, rule_id__in=[c.rule.id for c in with_list]).values_list(
            "rule_id", "entry_id"
        )
    )
    return [c for c in with_list if (c.rule.id, c.match.entry.id) not in raised_before]


def without_repeats(found: list[Candidate]) -> list[Candidate]:
    """The candidates their rule's cooldown does not hold back; the others are
    counted, not stored. The cooldown rows are locked until commit, so every
    process sees one history of what was raised."""
    cooling = sorted({(c.rule.id, c.cooldown_key) for c in found if c.rule.cooldown})
    if not cooling:
        return found
    rows = _locked_cooldowns(cooling)
    kept, changed, held = [], {}, []
    for candidate in found:
        if candidate.rule.cooldown:
            row = rows[candidate.rule.id, candidate.cooldown_key]
            # Apart in detection time, either way: a unit flushing its spool sends old ones late.
            if abs(candidate.detection.detected_at - row.last_detected_at) < candidate.rule.cooldown:
                held.append(candidate.rule.name)
                continue
            row.last_detected_at = candidate.detection.detected_at
            changed[row.pk] = row
        kept.append(candidate)
    if changed:
        AlertCooldown.objects.bulk_update(changed.values(), ["last_detected_at"])
    if held:
        transaction.on_commit(lambda: [metrics.ALERTS_HELD_BACK.labels(rule=name).inc() for name in held], robust=True)
    return kept


def _locked_cooldowns(keys: list[tuple[int, str]]) -> dict[tuple[int, str], AlertCooldown]:
    """The cooldown rows of (rule id, key) pairs, made if missing, locked.

    One upsert that writes nothing to a row already there: it takes each row's
    exclusive lock at once (in key order, so writers queue rather than
    deadlock). Inserting with IGNORE and then locking would take a shared lock
    first, and two writers upgrading theirs deadlock.
    """
    table = connection.ops.quote_name(AlertCooldown._meta.db_table)
    rule, key, last = (connection.ops.quote_name(c) for c in ("rule_id", "key", "last_detected_at"))
    never = AlertCooldown._meta.get_field("last_detected_at").get_db_prep_value(NEVER, connection)
    values = ", ".join(["(%s, %s, %s)"] * len(keys))
    params = [value for pair in keys for value in (*pair, never)]
    if connection.vendor == "mysql":
        conflict = f"ON DUPLICATE KEY UPDATE {last} = {last}"
    else:  # SQLite and PostgreSQL
        conflict = f"ON CONFLICT ({rule}, {key}) DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({rule}, {key}, {last}) VALUES {values} {conflict}", params)
    wanted = Q()
    for rule_id, name in keys:
        wanted |= Q(rule_id=rule_id, key=name)
    return {(row.rule_id, row.key): row for row in AlertCooldown.objects.select_for_update().filter(wanted)}


def store(raised: list[Candidate], detection_fields: dict[int, dict]) -> list[tuple[Alert, Event]]:
    """Alert rows and their feed events, numbered after the detections' events;
    `detection_fields` holds each detection's new_detection payload, by id,
    which its alerts carry (without the type)."""
    if not raised:
        return []
    seqs = counters.take_seqs(len(raised))
    alerts = []
    for seq, candidate in zip(seqs, raised, strict=True):
        detection = candidate.detection
        fields = {k: v for k, v in detection_fields[detection.pk].items() if k != "type"}
        alert = Alert(
            seq=seq,
            rule_id=candidate.rule.id,
            rule_name=candidate.rule.name,
            watchlist_id=candidate.rule.watchlist_id,
            watchlist_name=candidate.watchlist_name,
            entry_id=candidate.match.entry.id if candidate.match else None,
            matched_plate=candidate.match.entry.plate if candidate.match else "",
            distance=candidate.match.distance if candidate.match else None,
            detection_id=detection.pk,
            camera=detection.camera.name,
            vehicle_type=detection.vehicle_type,
            detected_at=detection.detected_at,
            detection=fields,
        )
        alerts.append(alert)
    Alert.objects.bulk_create(alerts)
    if any(alert.pk is None for alert in alerts):
        # MySQL does not say which ids it gave (MariaDB >= 10.5 and SQLite do).
        ids = dict(Alert.objects.filter(seq__in=seqs).values_list("seq", "pk"))
        for alert in alerts:
            alert.pk = ids[alert.seq]
    logged = [
        events.event_row(events.alert_payload(alert), candidate.detection)
        for alert, candidate in zip(alerts, raised, strict=True)
    ]
    Event.objects.bulk_create(logged)
    names = [alert.rule_name for alert in alerts]
    transaction.on_commit(lambda: [metrics.ALERTS_RAISED.labels(rule=name).inc() for name in names], robust=True)
    return list(zip(alerts, logged, strict=True))
