"""The event log: the payload of each event (a detection created, corrected
or deleted, an alert raised) and its row.

`writes` writes every event to the Event table, numbered by its seq, inside the
transaction that changes the detections; the feed publishes it after commit
to PUBLISH_GROUP and replays it from the table (`detections.feed.messages`),
and the followers of the log (`detections.core.followers`) take it from there,
the webhook workers among them (`detections.webhooks.outbox`).
"""

from django.conf import settings
from django.dispatch import Signal

from detections.core import counters
from detections.core.formats import file_url, format_time
from detections.models import Alert, Detection, Event, EventKind

# The fields of a payload (and of an alert's detection) that hold a file's URL.
_URL_FIELDS = ("image_url", "thumbnail_url")

# The channel-layer group every committed event is published to: the feed's
# processes join it, and so do the followers of the log, to wake at a commit.
PUBLISH_GROUP = "detections"

# Sent with `events=[Event, ...]` by a writer of events that have no model
# signal of their own (the visit and journey engines', a correction's), inside the
# transaction that writes them: the feed publishes them after its commit.
events_logged = Signal()


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
        "direction": detection.direction or None,
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


def detection_updated_payload(detection: Detection, seq: int, previous_plate: str) -> dict:
    """The `detection_updated` event of a read whose plate staff corrected
    (exactly the contract's fields: the followers of the log take the rest
    from the event's row and the detection)."""
    return {
        "type": EventKind.DETECTION_UPDATED,
        "seq": seq,
        "id": detection.pk,
        "camera": detection.camera.name,
        "plate": detection.plate,
        "previous_plate": previous_plate,
    }


def alert_payload(alert: Alert) -> dict:
    """The `alert` event of a stored alert: its own fields and its detection's."""
    return {
        "type": EventKind.ALERT,
        "seq": alert.seq,
        "alert_id": alert.pk,
        "rule": alert.rule_name,
        "watchlist": alert.watchlist_name or None,
        "entry_id": alert.entry_id,
        "matched_plate": alert.matched_plate or None,
        "distance": alert.distance,
        "detection": alert.detection,
        # Routing, as in the other events: a filtered client follows the camera and type.
        "camera": alert.camera,
        "vehicle_type": alert.vehicle_type,
    }


def event_row(payload: dict, detection: Detection, *, to_webhooks: bool = True) -> Event:
    """The log row of an event about `detection` (not saved yet); `to_webhooks`
    False keeps it from every webhook endpoint."""
    return Event(
        seq=payload["seq"],
        kind=payload["type"],
        detection_id=detection.pk,
        camera=payload["camera"],
        vehicle_type=detection.vehicle_type,
        payload=payload,
        to_webhooks=to_webhooks,
    )


def with_absolute_urls(payload: dict) -> dict:
    """A copy of an event's payload whose URLs start with PUBLIC_BASE_URL: what
    leaves the service for receivers that do not know its address (webhooks,
    MQTT)."""
    data = _absolute(payload)
    if isinstance(data.get("detection"), dict):
        data["detection"] = _absolute(data["detection"])
    return data


def _absolute(fields: dict) -> dict:
    fields = dict(fields)
    for name in _URL_FIELDS:
        url = fields.get(name)
        if isinstance(url, str) and url.startswith("/"):
            fields[name] = settings.PUBLIC_BASE_URL + url
    return fields
