"""Socket events: build them, number them, publish them, replay them.

The database is the source of truth: every event is written to the Event table
with its seq inside the transaction that changes the detections, and published
to the channel layer only after commit. A failed publish is logged and counted,
never raised: the row is stored, and a client that resumes gets the event.
"""

import base64
import json
from datetime import UTC, datetime

from . import counters, images
from .models import Detection, Event, EventKind
from .publisher import publisher

# Every socket joins this group; subscriptions filter inside the consumer.
FEED_GROUP = "detections"
# The channel-layer message type, handled by DetectionFeedConsumer.feed_event.
FEED_MESSAGE_TYPE = "feed.event"


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, as protocol.md writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_url(field_file) -> str | None:
    return field_file.url if field_file else None


def record_created(detection: Detection) -> Event:
    """Count a new detection and write its `new_detection` event (inside its transaction)."""
    position = counters.record_change(
        camera_id=detection.camera_id,
        vehicle_type=detection.vehicle_type,
        detected_at=detection.detected_at,
        delta=1,
    )
    return _write(new_detection_payload(detection, position), detection)


def record_created_many(detections: list[Detection]) -> list[Event]:
    """`record_created` for many detections at once (inside their transaction):
    one block of seqs, numbered in list order, and one insert for the events."""
    last = counters.record_created_many(detections)
    first_seq, first_count = last.seq - len(detections) + 1, last.count - len(detections) + 1
    rows = [
        _row(new_detection_payload(detection, counters.FeedPosition(seq=first_seq + i, count=first_count + i)), detection)
        for i, detection in enumerate(detections)
    ]
    return Event.objects.bulk_create(rows)


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


def record_deleted(detection: Detection, detection_id: int) -> Event:
    """Count a detection out and write its `deletion` event (inside its transaction)."""
    position = counters.record_change(
        camera_id=detection.camera_id,
        vehicle_type=detection.vehicle_type,
        detected_at=detection.detected_at,
        delta=-1,
    )
    payload = {
        "type": EventKind.DELETION,
        "seq": position.seq,
        "deleted_id": detection_id,
        "count": position.count,
        # Extensions: let a filtered client and the dashboard's counters follow.
        "camera": detection.camera.name,
        "vehicle_type": detection.vehicle_type,
    }
    return _write(payload, detection, detection_id=detection_id)


def _write(payload: dict, detection: Detection, *, detection_id: int | None = None) -> Event:
    event = _row(payload, detection, detection_id=detection_id)
    event.save(force_insert=True)
    return event


def _row(payload: dict, detection: Detection, *, detection_id: int | None = None) -> Event:
    return Event(
        seq=payload["seq"],
        kind=payload["type"],
        detection_id=detection_id or detection.pk,
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
    """Send an event to every socket, serialised once here. Never raises."""
    publish_many([(event, thumbnail)])


def publish_many(written: list[tuple[Event, bytes | None]]):
    """Send events (in seq order, with their thumbnails) in one channel-layer
    message: a batch of a hundred costs one publish, not a hundred."""
    publisher.submit(
        FEED_GROUP, {"type": FEED_MESSAGE_TYPE, "events": [feed_message(event, thumbnail) for event, thumbnail in written]}
    )


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
