"""Who is asking, on the REST API: edge units with device keys, viewers with
user tokens or a session (protocol.md, "Who may do what").

Both kinds of key travel as `Authorization: Token <key>` (or `Bearer <key>`):
device keys start with `vmk_` (detections.core.device_keys), viewer tokens are
DRF's 40-hex-digit user tokens.
"""

import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from detections.core.access import BadCredential, Device, credential
from detections.core.device_keys import DEVICE_KEY_PREFIX, hash_key
from detections.models import LAST_SEEN_RESOLUTION, Camera, DeviceKey


def request_credential(request) -> str | None:
    """The key of the request's Authorization header, if it holds one."""
    try:
        return credential(get_authorization_header(request))
    except BadCredential as exc:
        raise exceptions.AuthenticationFailed(str(exc)) from None


class DeviceKeyAuthentication(TokenAuthentication):
    """Edge units: `Authorization: Token vmk_...`. One query, the key and its
    cameras, at most every DEVICE_KEY_CACHE_SECONDS per key and process: a
    camera posting every second costs no query per detection, and a revoked
    key is refused by every process within that time."""

    def authenticate(self, request):
        secret = request_credential(request)
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
    if key.last_used_at is None or now - key.last_used_at > LAST_SEEN_RESOLUTION:
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
        secret = request_credential(request)
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
