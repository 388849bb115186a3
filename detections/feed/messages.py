"""Socket messages: the text of each event, publishing it, replaying it.

The database is the source of truth: every event is in the Event table
(`detections.core.events`) before it is published to the channel layer, after
commit. A failed publish is logged and counted, never raised: the row is
stored, and a client that resumes gets the event.
"""

import base64
import json

from detections.core import counters, images
from detections.feed.publisher import publisher
from detections.models import Detection, Event, EventKind
from detections.sites import payloads


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


def publish_all(events: list[Event]):
    """Send events without thumbnails (visits, sites, corrections), in order,
    together. Never raises."""
    publisher.publish_all([feed_message(event, None) for event in events])


def feed_message(event: Event, thumbnail: bytes | None) -> dict:
    """One event as the consumers take it: routing fields and the socket text."""
    message = {
        "kind": event.kind,
        "seq": event.seq,
        "camera": event.camera,
        "vehicle_type": event.vehicle_type,
        "text": message_text(event, thumbnail),
    }
    cameras = payloads.routing_cameras(event.payload)
    if cameras is not None:
        message["cameras"] = cameras  # a visit: a filter on cameras passes it for any of them
    return message


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
