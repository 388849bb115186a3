"""Who may see what: the one answer the REST API and the socket feed share
(docs/protocol.md, "Who may do what").

Edge units (device keys) write; viewers (users) read; an operator may open
reading to anyone with PUBLIC_FEED=true; alerts need the 'view alert'
permission, visits 'view visit', journeys 'view journey'. This module knows
principals and credentials, not requests:
api/authentication.py reads keys from HTTP headers, feed/socket_auth.py from
the socket's handshake.
"""

from dataclasses import dataclass, field

from django.conf import settings

from detections.models import Camera, EventKind

# Both kinds of key travel as `Authorization: Token <key>` (or `Bearer <key>`).
AUTH_KEYWORDS = (b"token", b"bearer")


class BadCredential(ValueError):
    """An Authorization header of a known scheme that holds no usable key."""


def credential(header: bytes) -> str | None:
    """The key of an Authorization header; None when it is of another scheme."""
    parts = header.split()
    if not parts or parts[0].lower() not in AUTH_KEYWORDS:
        return None
    if len(parts) != 2:
        raise BadCredential("Authorization must be 'Token <key>' or 'Bearer <key>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise BadCredential("The key must be ASCII.") from None


@dataclass(frozen=True)
class Device:
    """The principal of a request made with a device key (request.user)."""

    key_id: int
    key_prefix: str  # random, unlike key_id: names the key's rate counter
    cameras: dict[str, Camera] = field(default_factory=dict)  # by name
    is_authenticated = True
    is_staff = False

    def has_perm(self, perm, obj=None) -> bool:
        return False


def is_viewer(user) -> bool:
    """A signed-in person (a user token or a session), never a device."""
    return bool(user and user.is_authenticated and not isinstance(user, Device))


def may_view(user) -> bool:
    """May read detections, statistics and the feed."""
    return settings.PUBLIC_FEED or is_viewer(user)


def may_view_alerts(user) -> bool:
    """May read alerts, on the API and on the feed (PUBLIC_FEED does not open them)."""
    return is_viewer(user) and user.has_perm("detections.view_alert")


def may_view_visits(user) -> bool:
    """May read sites, visits, occupancy and dwell, and their events (never public)."""
    return is_viewer(user) and (user.has_perm("detections.view_visit") or user.has_perm("detections.manage_sites"))


def may_view_journeys(user) -> bool:
    """May read routes, journeys, travel times and the matrix, on the API and
    on the feed (never public): 'view journey', or 'manage routes'."""
    return is_viewer(user) and (user.has_perm("detections.view_journey") or user.has_perm("detections.manage_routes"))


def readable_kinds(user) -> frozenset[str]:
    """The kinds of event a user's socket may receive: detections, deletions
    and corrections for every viewer; alerts, visits and sites, and journeys
    with their permissions."""
    kinds = {EventKind.NEW_DETECTION.value, EventKind.DELETION.value, EventKind.DETECTION_UPDATED.value}
    if may_view_alerts(user):
        kinds.add(EventKind.ALERT.value)
    if may_view_visits(user):
        kinds |= {EventKind.VISIT.value, EventKind.SITE.value}
    if may_view_journeys(user):
        kinds.add(EventKind.JOURNEY.value)
    return frozenset(kinds)
