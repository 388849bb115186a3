"""Every change to detections: create one, create many, correct a plate,
delete one, delete many.

Views, the admin, the group commit and the operator commands call these
functions; nothing else writes detections. Each reads top to bottom in the
order the work happens:

    files -> rows -> alerts matched -> counters -> event rows -> alerts ->
    (commit) -> publish

The event rows are the webhook outbox too: the delivery workers make each
endpoint's messages from them (`webhooks.outbox.fan_out`), so nothing here
depends on the endpoints.

Publishing is the job of the post_save / post_delete signal receivers
(`feed/signals.py`). Bulk statements send no signals, so this module sends them
itself, once per row it inserts or deletes, and hands the receiver that row's
event and thumbnail as arguments of the signal.
"""

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.core.files.base import ContentFile
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from detections.alerts import config, raising
from detections.alerts.plates import normalize
from detections.core import counters, events, images
from detections.models import LAST_SEEN_RESOLUTION, Alert, Camera, Detection, Event, IdempotencyKey
from detections.operations import metrics

logger = logging.getLogger(__name__)

# What the unique constraint says makes two detections the same.
Key = tuple[int, str, datetime]


@dataclass(frozen=True)
class NewDetection:
    """A validated detection, not stored yet (what the ingest serializer makes)."""

    camera: Camera
    tracking_id: str
    vehicle_type: str
    detected_at: datetime
    image: images.VerifiedImage | None = None
    confidence: float | None = None
    bbox: list | None = None
    plate: str = ""
    direction: str = ""
    idempotency_key: str = ""

    @property
    def key(self) -> Key:
        return self.camera.pk, self.tracking_id, self.detected_at

    def request_hash(self) -> str:
        """What makes two requests 'the same detection', whatever their JSON spelling."""
        canonical = json.dumps(
            [
                self.camera.pk,
                self.tracking_id,
                self.vehicle_type,
                self.detected_at.isoformat(),
                hashlib.sha256(self.image.data).hexdigest() if self.image else None,
                self.confidence,
                self.bbox,
                self.plate,
                # Only when given: the hashes of keys stored before it existed stay the same.
                *([self.direction] if self.direction else []),
            ]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class IngestResult:
    detection: Detection
    created: bool  # False: the same detection was stored before (a retry)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different detection."""


# What became of one NewDetection.
Outcome = IngestResult | IdempotencyConflict


# --- Create ------------------------------------------------------------------------------


def detection_create(**fields) -> IngestResult:
    """Store one detection (the fields of NewDetection), or return the one
    already stored; raises IdempotencyConflict."""
    (outcome,) = detections_create([NewDetection(**fields)])
    if isinstance(outcome, IdempotencyConflict):
        raise outcome
    return outcome


def detections_create(items: list[NewDetection]) -> list[Outcome]:
    """Store detections in one transaction; an outcome per item, in order.

    A detection already stored (same camera, tracking id and time, or the same
    idempotency key) is answered with the stored row; the same detection twice
    in `items` is stored once. The cost is a fixed number of queries whatever
    the number of items: one to find what is stored, one insert for the rows,
    one upsert per counter table, one block of seqs, one insert for the events.
    The files are written before the rows and removed again if the rows are
    not stored, so no path leaves an orphan file or a row without its file.
    """
    if not items:
        return []
    _touch_cameras({item.camera.pk: item.camera for item in items}.values())
    outcomes, first_of = _sort_out(items)
    if not first_of:
        return outcomes
    new = [items[index] for index in first_of.values()]
    rows = [_unsaved(item) for item in new]
    rules = config.current()  # read before the transaction: it may reload the watch-lists
    try:
        thumbnails = [_write_files(row, item.image) for row, item in zip(rows, new, strict=True)]
        _retrying_deadlocks(lambda: _store(rows, new, thumbnails, rules), rows)
    except IntegrityError:
        _delete_files(rows)
        if len(items) > 1:
            # A parallel request stored one of these first, or the database holds
            # as equal two keys that differ here: item by item, each is answered exactly.
            return [outcome for item in items for outcome in detections_create([item])]
        # The race is lost: the other request's row is there to answer with.
        outcomes, first_of = _sort_out(items)
        if first_of:
            raise
        return outcomes
    except BaseException:
        _delete_files(rows)
        raise
    row_of = dict(zip(first_of, rows, strict=True))
    for index, item in enumerate(items):
        if outcomes[index] is None:
            outcomes[index] = IngestResult(row_of[item.key], created=first_of[item.key] == index)
    for row in rows:
        metrics.detection_ingested(row.camera.name, row.vehicle_type)
    return outcomes


def _store(rows: list[Detection], new: list[NewDetection], thumbnails: list, rules: config.Snapshot):
    """The rows, their events and alerts, in one transaction."""
    # durable: the commit happens here, never in a caller's transaction that
    # could still roll back after the files were kept.
    with transaction.atomic(durable=True):
        _insert(rows)
        IdempotencyKey.objects.bulk_create(
            IdempotencyKey(key=item.idempotency_key, request_hash=item.request_hash(), detection=row)
            for row, item in zip(rows, new, strict=True)
            if item.idempotency_key
        )
        # Before the counters: the feed row every writer shares is locked last.
        raised = raising.without_repeats(raising.candidates(rows, rules, timezone.now()))
        positions = counters.count_changes(rows, delta=1)
        written = Event.objects.bulk_create(
            events.event_row(events.new_detection_payload(row, position), row)
            for row, position in zip(rows, positions, strict=True)
        )
        alerts = raising.store(raised, {event.detection_id: event.payload for event in written})
        for row, event, thumbnail in zip(rows, written, thumbnails, strict=True):
            _send_post_save(row, event, thumbnail)
        for alert, event in alerts:
            _send_alert_saved(alert, event)


# InnoDB ends one of two transactions that wait for each other's locks and asks
# for it to be run again (ER_LOCK_DEADLOCK): a busy site sees it now and then,
# when ingest, deletions and a purge meet on the same rows and indexes.
DEADLOCK = 1213
DEADLOCK_ATTEMPTS = 3


def _retrying_deadlocks(run_transaction: Callable, rows: list[Detection] = ()):
    """Run `run_transaction` (a whole transaction of its own) again when the
    database chose it as a deadlock's victim; `rows` it inserted are unsaved again.
    Inside a caller's transaction it runs once: the deadlock rolled all of it back."""
    if connection.in_atomic_block:
        return run_transaction()
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            return run_transaction()
        except OperationalError as error:
            if attempt == DEADLOCK_ATTEMPTS or not error.args or error.args[0] != DEADLOCK:
                raise
            logger.info("a write transaction was a deadlock's victim; running it again (attempt %d)", attempt + 1)
            for row in rows:
                row.pk = None
                row._state.adding = True


def _sort_out(items: list[NewDetection]) -> tuple[list[Outcome | None], dict[Key, int]]:
    """What is already decided for each item (stored before, a conflict), and
    which to insert: for each key not stored yet, the index of its first item.
    An item left None is answered with the row of its key once inserted."""
    with_keys = [item.idempotency_key for item in items if item.idempotency_key]
    known_keys = {}
    if with_keys:
        known_keys = {
            stored.key: stored
            for stored in IdempotencyKey.objects.select_related("detection__camera").filter(key__in=with_keys)
        }
    stored = _stored_by_key([item.key for item in items])
    outcomes: list[Outcome | None] = []
    first_of: dict[Key, int] = {}
    hashes_seen: dict[str, str] = {}  # idempotency key -> request hash, within `items`
    for index, item in enumerate(items):
        if item.idempotency_key:
            request_hash = item.request_hash()
            earlier = known_keys.get(item.idempotency_key)
            if earlier is not None:
                outcomes.append(_replay(earlier.request_hash, request_hash, item, earlier.detection))
                continue
            if hashes_seen.setdefault(item.idempotency_key, request_hash) != request_hash:
                outcomes.append(_conflict(item))
                continue
        if item.key in stored:
            outcomes.append(IngestResult(stored[item.key], created=False))
        else:
            first_of.setdefault(item.key, index)  # the same detection twice: the first is stored
            outcomes.append(None)
    return outcomes, first_of


def _replay(stored_hash: str, request_hash: str, item: NewDetection, detection: Detection) -> Outcome:
    if stored_hash != request_hash:
        return _conflict(item)
    return IngestResult(detection, created=False)


def _conflict(item: NewDetection) -> IdempotencyConflict:
    return IdempotencyConflict(f"Idempotency-Key {item.idempotency_key!r} was used before with a different detection.")


def _touch_cameras(cameras):
    """Keep each camera's last_seen_at fresh, without a write per detection."""
    now = timezone.now()
    for camera in cameras:
        if camera.last_seen_at is None or now - camera.last_seen_at > LAST_SEEN_RESOLUTION:
            Camera.objects.filter(pk=camera.pk).update(last_seen_at=now)
            camera.last_seen_at = now


def _unsaved(item: NewDetection) -> Detection:
    return Detection(
        camera=item.camera,
        tracking_id=item.tracking_id,
        vehicle_type=item.vehicle_type,
        detected_at=item.detected_at,
        confidence=item.confidence,
        bbox=item.bbox,
        plate=item.plate,
        plate_normalized=normalize(item.plate),
        direction=item.direction,
    )


def _write_files(detection: Detection, image: images.VerifiedImage | None) -> bytes | None:
    """Store the snapshot and its thumbnail for a row not saved yet; the thumbnail's bytes."""
    if image is None:
        return None
    stem = uuid.uuid4().hex
    detection.image.save(f"{stem}.{image.extension}", ContentFile(image.data), save=False)
    detection.thumbnail.save(f"{stem}.jpg", ContentFile(image.thumbnail), save=False)
    return image.thumbnail


def _delete_files(detections: list[Detection]):
    """Remove what `_write_files` stored, for rows that were not stored."""
    images.delete_files(_file_names(detections))


def _file_names(detections: list[Detection]) -> list[str]:
    """The stored files of detections: snapshots and thumbnails."""
    return [name for d in detections for name in (d.image.name, d.thumbnail.name) if name]


def _stored_by_key(keys: list[Key]) -> dict[Key, Detection]:
    """The stored detections with any of `keys`, in one query on the unique index
    (cameras x tracking ids within the keys' time span, matched exactly here)."""
    wanted = set(keys)
    times = [detected_at for _, _, detected_at in wanted]
    candidates = Detection.objects.select_related("camera").filter(
        camera_id__in={camera_id for camera_id, _, _ in wanted},
        tracking_id__in={tracking_id for _, tracking_id, _ in wanted},
        detected_at__range=(min(times), max(times)),
    )
    return {key: detection for detection in candidates if (key := _key(detection)) in wanted}


def _key(detection: Detection) -> Key:
    return detection.camera_id, detection.tracking_id, detection.detected_at


def _insert(rows: list[Detection]):
    Detection.objects.bulk_create(rows)
    if any(row.pk is None for row in rows):
        # MySQL does not say which ids it gave (MariaDB >= 10.5, SQLite and
        # PostgreSQL do): read them back by the unique key, still in one query.
        ids = {key: stored.pk for key, stored in _stored_by_key([_key(row) for row in rows]).items()}
        for row in rows:
            row.pk = ids[_key(row)]


def _send_post_save(row: Detection, event: Event, thumbnail: bytes | None):
    post_save.send(
        sender=Detection,
        instance=row,
        created=True,
        raw=False,
        using=row._state.db,
        update_fields=None,
        event=event,
        thumbnail=thumbnail,
    )


def _send_alert_saved(alert: Alert, event: Event):
    post_save.send(
        sender=Alert, instance=alert, created=True, raw=False, using=alert._state.db, update_fields=None, event=event
    )


# --- Correct -----------------------------------------------------------------------------

PLATE_MAX_LENGTH = Detection._meta.get_field("plate").max_length


class InvalidPlate(ValueError):
    """A plate no read may be corrected to; the message says why."""


def checked_plate(plate) -> str:
    """A corrected plate as it is stored (surrounding spaces dropped; empty: the
    read has no plate); raises InvalidPlate. The API and the admin check with this."""
    if not isinstance(plate, str):
        raise InvalidPlate("plate must be a string (an empty one: the read shows no plate).")
    plate = plate.strip()
    if len(plate) > PLATE_MAX_LENGTH:
        raise InvalidPlate(f"plate has {len(plate)} characters; the most is {PLATE_MAX_LENGTH}.")
    if not plate.isprintable():
        raise InvalidPlate("plate must not contain control characters.")
    return plate


@dataclass(frozen=True)
class Corrected:
    detection: Detection
    previous_plate: str
    event: Event | None  # None: the read had that plate already, and nothing changed
    alerts: list[Alert]


def detection_correct(*, detection_id: int, plate: str) -> Corrected:
    """Correct the plate of a stored read (staff, through the API or the admin).

    In one transaction: the plate and its normal form, a `detection_updated`
    event, and the alerts the new plate raises; the old plate's alerts stay
    as they are and are never raised again. The followers of the log (visits,
    journeys, webhooks) derive again from the event. Raises
    Detection.DoesNotExist and InvalidPlate.
    """
    plate = checked_plate(plate)
    rules = config.current()  # before the transaction, as for a new read
    return _retrying_deadlocks(lambda: _correct(detection_id, plate, rules))


def _correct(detection_id: int, plate: str, rules: config.Snapshot) -> Corrected:
    # Not durable: the admin's change form runs it inside its own transaction
    # (with its log entry); no file is written here for a rollback to orphan.
    with transaction.atomic():
        # Locked: a deletion or another correction of the same read waits for this one.
        detection = Detection.objects.select_for_update().get(pk=detection_id)
        previous = detection.plate
        if plate == previous:
            return Corrected(detection, previous, None, [])
        detection.plate, detection.plate_normalized = plate, normalize(plate)
        Detection.objects.filter(pk=detection.pk).update(plate=plate, plate_normalized=detection.plate_normalized)
        # Before the seqs: the feed row every writer shares is locked last.
        raised = raising.without_repeats(raising.after_correction(detection, rules, timezone.now()))
        (seq,) = counters.take_seqs(1)
        event = events.event_row(events.detection_updated_payload(detection, seq, previous), detection)
        event.save(force_insert=True)
        fields = events.new_detection_payload(detection, counters.FeedPosition(seq, counters.current_position().count))
        alerts = raising.store(raised, {detection.pk: fields})
        events.events_logged.send(sender=Detection, events=[event])
        for alert, alert_event in alerts:
            _send_alert_saved(alert, alert_event)
    return Corrected(detection, previous, event, [alert for alert, _ in alerts])


# --- Delete ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deleted:
    detections: int
    files: int
    count: int  # detections stored after the last deletion


def detection_delete(*, detection: Detection) -> int:
    """Delete one detection (its files go after commit); returns the count left."""
    return detections_delete(Detection.objects.filter(pk=detection.pk)).count


def detections_delete(
    queryset,
    *,
    batch_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
    notify_webhooks: bool = True,
) -> Deleted:
    """Delete the detections of `queryset`, `batch_size` per transaction, oldest
    first. `progress(detections, files)` is called after each batch. Webhook
    endpoints hear of each deletion unless `notify_webhooks` is False (retention
    purges: a receiver wants the vehicles, not the housekeeping); the events say
    which, for the fan-out.

    Each batch locks its rows before reading them, so a row someone deletes at
    the same moment is counted out once, not twice.
    """
    detections = files = 0
    while True:
        rows, names = _retrying_deadlocks(lambda: _delete_batch(queryset, batch_size, notify_webhooks))
        if not rows:
            break
        detections += len(rows)
        files += len(names)
        if progress:
            progress(detections, files)
        if len(rows) < batch_size:
            break
    return Deleted(detections=detections, files=files, count=counters.current_position().count)


def _delete_batch(queryset, batch_size: int, notify_webhooks: bool) -> tuple[list[Detection], list[str]]:
    """Delete the oldest `batch_size` detections of `queryset` in one transaction:
    the rows and their file names (the files go after commit)."""
    with transaction.atomic():
        ids = list(queryset.order_by("detected_at", "id").select_for_update().values_list("pk", flat=True)[:batch_size])
        rows = list(Detection.objects.select_related("camera").filter(pk__in=ids).order_by("detected_at", "id"))
        if not rows:
            return [], []
        names = _file_names(rows)
        IdempotencyKey.objects.filter(detection_id__in=ids).delete()
        _delete_rows(ids)
        positions = counters.count_changes(rows, delta=-1)
        written = Event.objects.bulk_create(
            events.event_row(events.deletion_payload(row, position), row, to_webhooks=notify_webhooks)
            for row, position in zip(rows, positions, strict=True)
        )
        for row, event in zip(rows, written, strict=True):
            post_delete.send(sender=Detection, instance=row, using=row._state.db, origin=row, event=event)
        transaction.on_commit(lambda: images.delete_files(names), robust=True)
    return rows, names


def _delete_rows(ids: list[int]):
    # A plain DELETE: Django's own (QuerySet.delete) would send post_delete a
    # second time, without the events.
    table = connection.ops.quote_name(Detection._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)


# --- Rows the ORM changed directly --------------------------------------------------------


def count_saved_elsewhere(detection: Detection) -> tuple[Event, bytes | None]:
    """Count and log a detection that was saved by the ORM directly (a shell, a
    data fix), not through this module; its event and thumbnail."""
    with transaction.atomic():
        (position,) = counters.count_changes([detection], delta=1)
        event = events.event_row(events.new_detection_payload(detection, position), detection)
        event.save(force_insert=True)
    return event, images.read_stored(detection.thumbnail.name)


def count_deleted_elsewhere(detection: Detection) -> Event:
    """Count out and log a detection that the ORM deleted directly (inside
    Django's delete transaction); its files go after commit."""
    (position,) = counters.count_changes([detection], delta=-1)
    event = events.event_row(events.deletion_payload(detection, position), detection)
    event.save(force_insert=True)
    names = _file_names([detection])
    transaction.on_commit(lambda: images.delete_files(names), robust=True)
    return event
