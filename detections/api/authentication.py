"""Who is asking: edge units with device keys, viewers with user tokens or a
session, on the REST API and on the socket (protocol.md, "Who may do what").

Device keys look like `vmk_<43 random characters>`; viewer tokens are DRF's
40-hex-digit user tokens. Both travel as `Authorization: Token <key>` (or
`Bearer <key>`); the socket also takes a viewer token as `?token=`.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token

from .models import Camera, DeviceKey

DEVICE_KEY_PREFIX = "vmk_"
AUTH_KEYWORDS = (b"token", b"bearer")
# A key's last_used_at (and its camera's last_seen_at) is written at most this often.
LAST_USE_RESOLUTION = timedelta(seconds=30)


# --- Device keys -------------------------------------------------------------------------


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_device_secret(key: DeviceKey) -> str:
    """Give `key` a fresh secret (not saved yet); only its hash and prefix are kept."""
    secret = DEVICE_KEY_PREFIX + secrets.token_urlsafe(32)
    key.prefix, key.key_hash = secret[:12], hash_key(secret)
    return secret


def issue_device_key(*, cameras: list[Camera], label: str = "") -> tuple[DeviceKey, str]:
    """A new key bound to `cameras`. The secret is returned once and never stored."""
    key = DeviceKey(label=label)
    secret = new_device_secret(key)
    key.save()
    key.cameras.set(cameras)
    return key, secret


def revoke_device_keys(keys) -> int:
    """Revoke keys (a queryset); takes effect on the very next request."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def rotate_device_key(key: DeviceKey) -> tuple[DeviceKey, str]:
    """Revoke `key` and issue its replacement, bound to the same cameras."""
    revoke_device_keys(DeviceKey.objects.filter(pk=key.pk))
    return issue_device_key(cameras=list(key.cameras.all()), label=key.label)


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


def _credential(header: bytes) -> str | None:
    parts = header.split()
    if not parts or parts[0].lower() not in AUTH_KEYWORDS:
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Authorization must be 'Token <key>' or 'Bearer <key>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("The key must be ASCII.") from None


class DeviceKeyAuthentication(TokenAuthentication):
    """Edge units: `Authorization: Token vmk_...`. One query, the key and its
    cameras, at most every DEVICE_KEY_CACHE_SECONDS per key and process: a
    camera posting every second costs no query per detection, and a revoked
    key is refused by every process within that time."""

    def authenticate(self, request):
        secret = _credential(get_authorization_header(request))
        if not secret or not secret.startswith(DEVICE_KEY_PREFIX):
            return None
        key_hash = hash_key(secret)
        now = time.monotonic()
        known = _checked_keys.get(key_hash)
        if known is None or now - known[0] >= settings.DEVICE_KEY_CACHE_SECONDS:
            known = _checked_keys[key_hash] = (now, _device_for(key_hash))
        return known[1], known[1]


# Key hash -> (when it was checked, its Device): only keys that were valid then.
_checked_keys: dict[str, tuple[float, "Device"]] = {}


def _device_for(key_hash: str) -> "Device":
    try:
        bindings = _bindings(key_hash)
    except (OperationalError, InterfaceError):
        # Device requests skip request_started, whose receiver drops a broken
        # connection (vehicle_monitor/device_requests.py): after a database
        # restart, reconnect here, once.
        connection.close()
        bindings = _bindings(key_hash)
    if not bindings:
        _checked_keys.pop(key_hash, None)
        raise exceptions.AuthenticationFailed("Invalid or revoked device key.")
    key = bindings[0].devicekey
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USE_RESOLUTION:
        DeviceKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return Device(key_id=key.pk, key_prefix=key.prefix, cameras={b.camera.name: b.camera for b in bindings})


def _bindings(key_hash: str) -> list:
    """The key's camera bindings, each with its key and camera (one join)."""
    return list(
        DeviceKey.cameras.through.objects.select_related("devicekey", "camera").filter(
            devicekey__key_hash=key_hash, devicekey__revoked_at__isnull=True
        )
    )


class ViewerTokenAuthentication(TokenAuthentication):
    """Apps and tools: DRF user tokens (`manage.py drf_create_token USER`), as Token or Bearer."""

    def authenticate(self, request):
        secret = _credential(get_authorization_header(request))
        if not secret or secret.startswith(DEVICE_KEY_PREFIX):
            return None
        return self.authenticate_credentials(secret)


def camera_for_device(device: Device, requested: str) -> Camera:
    """The camera a device posts for: the one it names, if its key is bound to it,
    or its only camera when it names none."""
    if not requested:
        if len(device.cameras) == 1:
            return next(iter(device.cameras.values()))
        names = ", ".join(sorted(device.cameras))
        raise exceptions.ValidationError(
            {"camera": [f"This key posts for several cameras; name one of: {names}."]}, code="required"
        )
    camera = device.cameras.get(requested)
    if camera is None:
        raise CameraNotAllowed(f"This key may not post for camera '{requested}'.")
    return camera


class CameraNotAllowed(exceptions.PermissionDenied):
    default_code = "camera_not_allowed"


# --- The socket ------------------------------------------------------------------------------


def _viewer_for_token(secret: str):
    token = Token.objects.select_related("user").filter(key=secret).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


# Set in the scope of a socket whose Origin only SOCKET_ALLOWED_ORIGINS lets in.
FOREIGN_ORIGIN = "vehicle_monitor.foreign_origin"


class SocketTokenAuthMiddleware(BaseMiddleware):
    """After the session middleware: a viewer token from `?token=` or the
    Authorization header, for apps that have no session cookie. A socket let in
    only by SOCKET_ALLOWED_ORIGINS is anonymous unless it brings a token: the
    browser sends the site's session cookie with a foreign page's socket too,
    so that cookie proves nothing about who wrote the page."""

    async def __call__(self, scope, receive, send):
        if scope.get(FOREIGN_ORIGIN):
            scope = {**scope, "user": AnonymousUser()}
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            secret = _socket_token(scope)
            if secret and not secret.startswith(DEVICE_KEY_PREFIX):
                scope = {**scope, "user": await database_sync_to_async(_viewer_for_token)(secret)}
        return await super().__call__(scope, receive, send)


def _socket_token(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][-1]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            try:
                return _credential(value)
            except exceptions.AuthenticationFailed:
                return None
    return None


class SocketOriginValidator(OriginValidator):
    """Browsers always send Origin on a socket: it must be one of ALLOWED_HOSTS,
    so another site cannot ride a viewer's session cookie. Native apps send no
    Origin and authenticate with a token, which a cross-site page cannot read;
    they are let through to authenticate. Origins listed in
    SOCKET_ALLOWED_ORIGINS (`null` for a page opened from a file) are let in
    too, marked FOREIGN_ORIGIN, so that their session cookie counts for nothing."""

    def __init__(self, application):
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)
        self.foreign_origins = {origin.lower() for origin in settings.SOCKET_ALLOWED_ORIGINS}

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        if origin is not None and origin.lower() in self.foreign_origins and not self.valid_origin(urlparse(origin)):
            return await self.application({**scope, FOREIGN_ORIGIN: True}, receive, send)
        return await super().__call__(scope, receive, send)

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def _header(scope, name: bytes) -> str | None:
    for header, value in scope.get("headers", []):
        if header == name:
            return value.decode("latin-1")
    return None
