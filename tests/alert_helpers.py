"""What the watch-list, rule and alert tests set up the same way: users holding
one permission, and alerts stored as the matching code stores them."""

from datetime import UTC, datetime, timedelta
from itertools import count

from conftest import api_client
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token

from detections.models import Alert

_seqs = count(1_000_000)
RAISED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def token_with(username: str, *codenames: str) -> str:
    """The API token of a new user holding exactly these permissions."""
    user = User.objects.create_user(username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="detections", codename__in=codenames))
    return Token.objects.create(user=user).key


def client_with(username: str, *codenames: str):
    """An API client of a new user holding exactly these permissions."""
    return api_client(token_with(username, *codenames))


def store_alert(detection_id: int = 1, *, rule=None, watchlist=None, minutes: int = 0, **fields) -> Alert:
    """An alert `minutes` after RAISED, for a detection (stored or not) of that id."""
    camera = fields.pop("camera", "gate-1")
    detected_at = RAISED + timedelta(minutes=minutes)
    return Alert.objects.create(
        seq=next(_seqs),
        rule=rule,
        rule_name=rule.name if rule else "a deleted rule",
        watchlist=watchlist,
        watchlist_name=watchlist.name if watchlist else "",
        entry_id=fields.pop("entry_id", None),
        matched_plate=fields.pop("matched_plate", "34 ABC 123"),
        distance=fields.pop("distance", 0),
        detection_id=detection_id,
        camera=camera,
        vehicle_type=fields.pop("vehicle_type", "car"),
        detected_at=detected_at,
        detection=fields.pop(
            "detection",
            {"id": detection_id, "camera": camera, "vehicle_type": "car", "plate": "34ABC123"},
        ),
        created_at=detected_at,
        **fields,
    )
