"""Endpoint signing secrets: made here, shown once, stored encrypted.

A secret is Standard Webhooks' format, `whsec_` + base64 of random bytes. At
rest it is a Fernet token under the keys of WEBHOOK_SECRET_KEYS: the first key
encrypts, every key decrypts, so a key is rotated by putting a new one first
and running `manage.py rotate_webhook_secrets_key` (then the old one may go).
With no keys configured, one key is derived from SECRET_KEY, so a fresh
install encrypts without any setup; changing SECRET_KEY then needs the key
derived from the old one listed in WEBHOOK_SECRET_KEYS (`derived_key`).
"""

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from detections.models import WebhookEndpoint

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# Separates this key from anything else that may ever be derived from SECRET_KEY.
DERIVED_KEY_CONTEXT = b"vehicle_monitor webhook endpoint secrets"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def derived_key(secret_key: str) -> str:
    """The Fernet key used while WEBHOOK_SECRET_KEYS is empty: HKDF-SHA256 of
    SECRET_KEY. To move to keys of your own, list a new key first and this one
    after it, run `rotate_webhook_secrets_key`, then drop this one (docs/alerts.md)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVED_KEY_CONTEXT)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())).decode("ascii")


def fernet() -> MultiFernet:
    """Every configured key: the first encrypts, each decrypts (ImproperlyConfigured when one is no key)."""
    keys = settings.WEBHOOK_SECRET_KEYS or [derived_key(settings.SECRET_KEY)]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as bad:
        raise ImproperlyConfigured(
            f"WEBHOOK_SECRET_KEYS: every key must be a Fernet key (32 url-safe base64 bytes): {bad}"
        ) from None


def encrypt(secret: str) -> str:
    return fernet().encrypt(secret.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The secret, or ImproperlyConfigured when no configured key opens it (a
    key was removed before `rotate_webhook_secrets_key` ran)."""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A webhook secret was encrypted with a key that WEBHOOK_SECRET_KEYS no longer lists."
        ) from None


def give_new_secret(endpoint: WebhookEndpoint) -> str:
    """Set a new secret on `endpoint` (not saved) and return it, for showing once."""
    secret = new_secret()
    endpoint.secret_encrypted = encrypt(secret)
    return secret


def reencrypt_all() -> int:
    """Encrypt every endpoint's secret again with the first key; how many there were."""
    keys = fernet()
    count = 0
    with transaction.atomic():
        # Locked, so a secret rotated meanwhile is not overwritten with the old one.
        for endpoint in WebhookEndpoint.objects.select_for_update().only("pk", "secret_encrypted"):
            try:
                rotated = keys.rotate(endpoint.secret_encrypted.encode()).decode("ascii")
            except InvalidToken:
                raise ImproperlyConfigured(
                    f"The secret of webhook endpoint {endpoint.pk} opens with no key of WEBHOOK_SECRET_KEYS; "
                    "nothing was changed."
                ) from None
            # update(), not save(): the endpoint's configuration did not change.
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_encrypted=rotated)
            count += 1
    return count
