"""The webhook outbox: a message per event and endpoint, written in the
transaction of the change it reports, so that a committed change is always
delivered (by `deliver_webhooks`) and a rolled-back one never is."""

import json
import uuid

from django.conf import settings
from django.utils import timezone

from detections.alerts.config import Endpoint
from detections.core.formats import format_time
from detections.models import Event, EventKind, WebhookEvent, WebhookMessage

WEBHOOK_EVENT_OF = {
    EventKind.NEW_DETECTION: WebhookEvent.DETECTION_CREATED,
    EventKind.DELETION: WebhookEvent.DETECTION_DELETED,
    EventKind.ALERT: WebhookEvent.ALERT_TRIGGERED,
}
_URL_FIELDS = ("image_url", "thumbnail_url")


def enqueue(logged: list[Event], endpoints: tuple[Endpoint, ...]):
    """Write the messages of `logged` events for the endpoints that take them."""
    if not endpoints:
        return
    now = timezone.now()
    messages = []
    for event in logged:
        event_type = WEBHOOK_EVENT_OF[event.kind]
        receivers = [e for e in endpoints if event_type in e.events and (not e.cameras or event.camera in e.cameras)]
        if not receivers:
            continue
        body = json.dumps(
            {
                "type": event_type,
                "timestamp": format_time(event.created_at),
                "seq": event.seq,
                "data": message_data(event.payload),
            },
            separators=(",", ":"),
        )
        messages.extend(
            WebhookMessage(
                endpoint_id=endpoint.id,
                message_id=f"msg_{uuid.uuid4().hex}",
                event_type=event_type,
                seq=event.seq,
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
            for endpoint in receivers
        )
    WebhookMessage.objects.bulk_create(messages)


def message_data(payload: dict) -> dict:
    """The socket message of an event without type and seq, with absolute URLs."""
    data = {key: value for key, value in payload.items() if key not in ("type", "seq")}
    _make_absolute(data)
    if isinstance(data.get("detection"), dict):
        data["detection"] = dict(data["detection"])
        _make_absolute(data["detection"])
    return data


def _make_absolute(fields: dict):
    for name in _URL_FIELDS:
        url = fields.get(name)
        if isinstance(url, str) and url.startswith("/"):
            fields[name] = settings.PUBLIC_BASE_URL + url
