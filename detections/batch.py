"""Many detections in one transaction: the store behind POST /api/detections/batch/.

Each item ends as `ingest.detection_create` would leave it (created, or the
duplicate of the row already stored), but a batch costs a fixed number of
queries whatever its size: one to find what is stored, one insert for the rows,
one upsert per counter table, one block of seqs and one insert for the events.

Bulk inserts send no signals, so what the signal receivers do for a single
detection (count it, write its event, publish after commit) is done here.
"""

from datetime import datetime

from django.db import IntegrityError, transaction

from . import events, ingest, metrics
from .ingest import IngestResult
from .models import Detection

# What the unique constraint says makes two detections the same.
Key = tuple[int, str, datetime]


def create_many(items: list[dict]) -> list[IngestResult]:
    """Store detections given as keyword arguments of `ingest.detection_create`
    (no idempotency key); one result per item, in the order of `items`."""
    if not items:
        return []
    for camera in {item["camera"].pk: item["camera"] for item in items}.values():
        ingest.touch_camera(camera)
    stored = _stored_by_key([_item_key(item) for item in items])
    results: list[IngestResult] = []
    new: dict[Key, tuple[Detection, dict]] = {}  # the first item of each key not stored yet
    for item in items:
        key = _item_key(item)
        if key in stored:
            results.append(IngestResult(stored[key], created=False))
        elif key in new:  # the same detection twice in one batch: the first one counts
            results.append(IngestResult(new[key][0], created=False))
        else:
            detection = _unsaved(item)
            new[key] = (detection, item)
            results.append(IngestResult(detection, created=True))
    created = [detection for detection, _ in new.values()]
    if not created:
        return results
    try:
        for detection, item in new.values():
            ingest.write_snapshot(detection, item["image"])
        # durable, as in detection_create: the files are kept only if this commits.
        with transaction.atomic(durable=True):
            _insert(created)
            written = events.record_created_many(created)
            thumbnails = [detection.thumbnail_bytes for detection in created]
            transaction.on_commit(lambda: _publish(written, thumbnails), robust=True)
    except IntegrityError:
        _delete_snapshots(created)
        # A parallel request stored one of these first, or the database holds as
        # equal two keys that differ here (MySQL compares text case-insensitively):
        # the single path, item by item, answers each exactly.
        return [ingest.detection_create(**item) for item in items]
    except BaseException:
        _delete_snapshots(created)
        raise
    for detection in created:
        metrics.detection_ingested(detection.camera.name, detection.vehicle_type)
    return results


def _item_key(item: dict) -> Key:
    return item["camera"].pk, item["tracking_id"], item["detected_at"]


def _key(detection: Detection) -> Key:
    return detection.camera_id, detection.tracking_id, detection.detected_at


def _unsaved(item: dict) -> Detection:
    fields = {name: value for name, value in item.items() if name != "image"}
    return Detection(**fields)


def _stored_by_key(keys: list[Key]) -> dict[Key, Detection]:
    """The stored detections with any of `keys`, in one query on the unique index
    (cameras x tracking ids within the batch's time span, matched exactly here)."""
    wanted = set(keys)
    times = [detected_at for _, _, detected_at in wanted]
    candidates = Detection.objects.select_related("camera").filter(
        camera_id__in={camera_id for camera_id, _, _ in wanted},
        tracking_id__in={tracking_id for _, tracking_id, _ in wanted},
        detected_at__range=(min(times), max(times)),
    )
    return {key: detection for detection in candidates if (key := _key(detection)) in wanted}


def _insert(detections: list[Detection]):
    Detection.objects.bulk_create(detections)
    if any(detection.pk is None for detection in detections):
        # MySQL does not say which ids it gave (MariaDB >= 10.5, SQLite and
        # PostgreSQL do): read them back by the unique key, still in one query.
        ids = {key: stored.pk for key, stored in _stored_by_key([_key(d) for d in detections]).items()}
        for detection in detections:
            detection.pk = ids[_key(detection)]


def _publish(written, thumbnails):
    # One channel-layer message for the batch, its events in seq order.
    events.publish_many(list(zip(written, thumbnails)))


def _delete_snapshots(detections: list[Detection]):
    for detection in detections:
        ingest.delete_snapshot(detection)
