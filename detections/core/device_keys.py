"""Device keys: issued, revoked and rotated by staff, stored hashed.

Keys look like `vmk_<43 random characters>`: 256 random bits, so a plain hash
is as good as a slow one and costs nothing per request. The secret is shown
once, when it is issued, and never stored.
"""

import hashlib
import secrets

from django.utils import timezone

from detections.models import Camera, DeviceKey

DEVICE_KEY_PREFIX = "vmk_"


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
    """Revoke keys (a queryset): every server process refuses them within
    DEVICE_KEY_CACHE_SECONDS (the API's device-key authentication)."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def rotate_device_key(key: DeviceKey) -> tuple[DeviceKey, str]:
    """Revoke `key` and issue its replacement, bound to the same cameras."""
    revoke_device_keys(DeviceKey.objects.filter(pk=key.pk))
    return issue_device_key(cameras=list(key.cameras.all()), label=key.label)
