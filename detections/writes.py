"""The one place that creates and deletes detections (with `batch`, its bulk twin).

Views validate, call these functions, and serialise what they return. The
counters and the event row are written by the signal receivers inside the same
transaction (see `signals.py`).
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import counters, images, metrics
from .models import Camera, Detection, IdempotencyKey

# A camera's last_seen_at is written at most this often, not on every detection.
LAST_SEEN_RESOLUTION = timedelta(seconds=30)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different detection."""


@dataclass(frozen=True)
class IngestResult:
    detection: Detection
    created: bool  # False: the same detection was stored before (a retry)


def touch_camera(camera: Camera):
    """Keep the camera's last_seen_at fresh, without a write per detection."""
    now = timezone.now()
    if camera.last_seen_at is None or now - camera.last_seen_at > LAST_SEEN_RESOLUTION:
        Camera.objects.filter(pk=camera.pk).update(last_seen_at=now)
        camera.last_seen_at = now


def detection_create(
    *,
    camera: Camera,
    tracking_id: str,
    vehicle_type: str,
    detected_at: datetime,
    image: images.VerifiedImage | None = None,
    confidence: float | None = None,
    bbox: list | None = None,
    plate: str = "",
    idempotency_key: str = "",
) -> IngestResult:
    """Store one detection with its snapshot, or return the one already stored.

    "Already stored" means the same camera, tracking id and time (a unique
    constraint, so parallel retries store one row), or the same idempotency key.
    The files are written before the row and removed again if the row is not
    stored, so no path leaves an orphan file or a row without its file.
    """
    request_hash = ""
    if idempotency_key:
        request_hash = _request_hash(
            camera.pk, tracking_id, vehicle_type, detected_at, image, confidence, bbox, plate
        )
        replayed = _replay_idempotent(idempotency_key, request_hash)
        if replayed:
            return replayed
    touch_camera(camera)
    detection = Detection(
        camera=camera,
        tracking_id=tracking_id,
        vehicle_type=vehicle_type,
        detected_at=detected_at,
        confidence=confidence,
        bbox=bbox,
        plate=plate,
    )
    try:
        write_snapshot(detection, image)
        # durable: the commit happens here, never in a caller's transaction that
        # could still roll back after the files were kept.
        with transaction.atomic(durable=True):
            detection.save()
            if idempotency_key:
                IdempotencyKey.objects.create(key=idempotency_key, request_hash=request_hash, detection=detection)
    except IntegrityError:
        delete_snapshot(detection)
        # A parallel request stored it first: answer with what it stored.
        replayed = idempotency_key and _replay_idempotent(idempotency_key, request_hash)
        if replayed:
            return replayed
        existing = _find_stored(camera, tracking_id, detected_at)
        if existing is None:
            raise
        return IngestResult(existing, created=False)
    except BaseException:
        delete_snapshot(detection)
        raise
    metrics.detection_ingested(camera.name, vehicle_type)
    return IngestResult(detection, created=True)


def write_snapshot(detection: Detection, image: images.VerifiedImage | None):
    """Store the snapshot and its thumbnail for a detection not saved yet (files
    first: a row never points at a file that is not there)."""
    if image is None:
        return
    stem = uuid.uuid4().hex
    detection.image.save(f"{stem}.{image.extension}", ContentFile(image.data), save=False)
    detection.thumbnail.save(f"{stem}.jpg", ContentFile(image.thumbnail), save=False)
    # Kept for the event, which carries the thumbnail inline.
    detection.thumbnail_bytes = image.thumbnail


def delete_snapshot(detection: Detection):
    """Remove what `write_snapshot` stored, for a row that was not stored."""
    images.delete_files([detection.image.name, detection.thumbnail.name])


def _replay_idempotent(key: str, request_hash: str) -> IngestResult | None:
    stored = IdempotencyKey.objects.select_related("detection__camera").filter(key=key).first()
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was used before with a different detection.")
    return IngestResult(stored.detection, created=False)


def _request_hash(camera_id, tracking_id, vehicle_type, detected_at, image, confidence, bbox, plate) -> str:
    """What makes two requests 'the same detection', whatever their JSON spelling."""
    canonical = json.dumps(
        [
            camera_id,
            tracking_id,
            vehicle_type,
            detected_at.isoformat(),
            hashlib.sha256(image.data).hexdigest() if image else None,
            confidence,
            bbox,
            plate,
        ]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _find_stored(camera: Camera, tracking_id: str, detected_at: datetime) -> Detection | None:
    return (
        Detection.objects.select_related("camera")
        .filter(camera=camera, tracking_id=tracking_id, detected_at=detected_at)
        .first()
    )


def detection_delete(*, detection: Detection) -> int:
    """Delete one detection (its files go after commit); returns the count left."""
    with transaction.atomic():
        detection.delete()
        return counters.current_position().count
