"""Socket events: their payloads, their log rows, publishing them, replaying them.

The database is the source of truth: `writes` writes every event to the Event
table with its seq inside the transaction that changes the detections, and it
is published to the channel layer only after commit. A failed publish is
logged and counted, never raised: the row is stored, and a client that
resumes gets the event.
"""

import base64
import json
from datetime import UTC, datetime

from . import counters, images
from .models import Detection, Event, EventKind
from .publisher import publisher

def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, as protocol.md writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_url(field_file) -> str | None:
    return field_file.url if field_file else None


def new_detection_payload(detection: Detection, position: counters.FeedPosition) -> dict:
    """The `new_detection` event of a stored detection at a feed position."""
    return {
        "type": EventKind.NEW_DETECTION,
        "seq": position.seq,
        "id": detection.pk,
        "tracking_id": detection.tracking_id,
        "vehicle_type": detection.vehicle_type,
        "camera": detection.camera.name,
        "time": format_time(detection.detected_at),
        "count": position.count,
        "image_url": file_url(detection.image),
        "thumbnail_url": file_url(detection.thumbnail),
        "confidence": detection.confidence,
        "bbox": detection.bbox,
        "plate": detection.plate,
    }


def deletion_payload(detection: Detection, position: counters.FeedPosition) -> dict:
    """The `deletion` event of a detection being deleted, at a feed position."""
    return {
        "type": EventKind.DELETION,
        "seq": position.seq,
        "deleted_id": detection.pk,
        "count": position.count,
        # Extensions: let a filtered client and the dashboard's counters follow.
        "camera": detection.camera.name,
        "vehicle_type": detection.vehicle_type,
    }


def event_row(payload: dict, detection: Detection) -> Event:
    """The log row of an event about `detection` (not saved yet)."""
    return Event(
        seq=payload["seq"],
        kind=payload["type"],
        detection_id=detection.pk,
        camera=payload["camera"],
        vehicle_type=detection.vehicle_type,
        payload=payload,
    )


def message_text(event: Event, thumbnail: bytes | None = None) -> str:
    """The socket message for an event, with the thumbnail inline when there is one."""
    message = dict(event.payload)
    if event.kind == EventKind.NEW_DETECTION:
        message["image"] = base64.b64encode(thumbnail).decode("ascii") if thumbnail else None
    return json.dumps(message, separators=(",", ":"))


def publish(event: Event, *, thumbnail: bytes | None = None):
    """Send an event to every socket, serialised once here. Never raises: the
    publisher sends what is queued together, in seq order."""
    publisher.publish(feed_message(event, thumbnail))


def feed_message(event: Event, thumbnail: bytes | None) -> dict:
    """One event as the consumers take it: routing fields and the socket text."""
    return {
        "kind": event.kind,
        "seq": event.seq,
        "camera": event.camera,
        "vehicle_type": event.vehicle_type,
        "text": message_text(event, thumbnail),
    }


# --- Replay --------------------------------------------------------------------------

REPLAY_PAGE = 200


def feed_head() -> int:
    """The seq of the newest event (0 when there is none)."""
    return counters.current_position().seq


def replay_after(after: int, *, limit: int = REPLAY_PAGE) -> list[dict] | None:
    """Up to `limit` events after seq `after`, oldest first, as channel-layer
    messages. None when the log no longer reaches back to `after`, or `after` is
    ahead of it (the database was reset): the client must reload instead."""
    head = feed_head()
    if after == head:
        return []
    oldest = Event.objects.order_by("seq").values_list("seq", flat=True).first()
    if after > head or oldest is None or after < oldest - 1:
        return None
    page = list(Event.objects.filter(seq__gt=after).order_by("seq")[:limit])
    created_ids = [event.detection_id for event in page if event.kind == EventKind.NEW_DETECTION]
    thumbnails = dict(Detection.objects.filter(pk__in=created_ids).values_list("pk", "thumbnail"))
    return [feed_message(event, images.read_stored(thumbnails.get(event.detection_id))) for event in page]
