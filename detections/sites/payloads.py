"""The JSON of a visit, and the `visit` and `site` events (protocol.md): one
home for what the API answers, the socket carries and webhooks send."""

from detections.core.formats import format_time
from detections.models import EventKind
from detections.sites.models import Site, Visit


def _time(moment):
    return format_time(moment) if moment else None


def visit_json(visit: Visit) -> dict:
    return {
        "id": visit.pk,
        "site": visit.site_id,
        "plate": visit.plate,
        "state": visit.state,
        "entered_at": _time(visit.entered_at),
        "exited_at": _time(visit.exited_at),
        "duration_seconds": visit.duration_seconds,
        "entry_detection": visit.entry_detection_id,
        "exit_detection": visit.exit_detection_id,
        "overstay": visit.overstay,
        # Extensions: where it was read, which the cameras filters go by.
        "entry_camera": visit.entry_camera or None,
        "exit_camera": visit.exit_camera or None,
    }


def visit_payload(seq: int, event: str, visit: Visit, occupancy: int) -> dict:
    return {"type": EventKind.VISIT, "seq": seq, "event": event, "visit": visit_json(visit), "occupancy": occupancy}


def site_payload(seq: int, event: str, site: Site, occupancy: int) -> dict:
    return {
        "type": EventKind.SITE,
        "seq": seq,
        "site": site.pk,
        "name": site.name,
        "event": event,
        "occupancy": occupancy,
        "capacity": site.capacity,
    }


def routing_cameras(payload: dict) -> list[str] | None:
    """The cameras a `visit` event is about (a filter on cameras passes it when
    it names any of them); None for other events, which name their one camera."""
    if payload.get("type") != EventKind.VISIT:
        return None
    visit = payload.get("visit") or {}
    return [name for name in (visit.get("entry_camera"), visit.get("exit_camera")) if name]
