"""Endpoint secrets: Standard Webhooks' format, encrypted at rest, and the
encryption key rotated without losing one."""

import base64

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from standardwebhooks import Webhook
from webhook_helpers import make_endpoint

from detections.models import WebhookEndpoint
from detections.webhooks import secrets


def test_a_secret_is_whsec_and_the_base64_of_32_random_bytes_that_standard_webhooks_accepts():
    secret = secrets.new_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert secret != secrets.new_secret()
    Webhook(secret)  # the reference library takes it as it is


def test_what_is_stored_is_not_the_secret_and_opens_with_the_key(settings):
    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]
    secret = secrets.new_secret()

    token = secrets.encrypt(secret)

    assert secret not in token and secret.removeprefix("whsec_") not in token
    assert secrets.decrypt(token) == secret


def test_without_keys_a_key_derived_from_the_secret_key_is_used(settings):
    settings.WEBHOOK_SECRET_KEYS = []
    token = secrets.encrypt("whsec_abc")

    settings.WEBHOOK_SECRET_KEYS = [secrets.derived_key(settings.SECRET_KEY)]
    assert secrets.decrypt(token) == "whsec_abc"
    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured):
        secrets.decrypt(token)


def test_with_a_new_key_first_old_secrets_still_open_and_new_ones_use_the_new_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOK_SECRET_KEYS = [old]
    before = secrets.encrypt("whsec_before")

    settings.WEBHOOK_SECRET_KEYS = [new, old]
    after = secrets.encrypt("whsec_after")

    assert secrets.decrypt(before) == "whsec_before"
    assert Fernet(new).decrypt(after.encode()) == b"whsec_after"


def test_a_key_that_is_no_fernet_key_is_a_configuration_error(settings):
    settings.WEBHOOK_SECRET_KEYS = ["not-a-key"]

    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_SECRET_KEYS"):
        secrets.encrypt("whsec_x")


@pytest.mark.django_db
def test_the_rotate_command_re_encrypts_every_secret_with_the_first_key(settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOK_SECRET_KEYS = [old]
    endpoints = [make_endpoint(f"https://gate.example/{n}") for n in range(3)]

    settings.WEBHOOK_SECRET_KEYS = [new, old]
    call_command("rotate_webhook_secrets_key")

    assert "Re-encrypted 3 webhook secret(s)" in capsys.readouterr().out
    settings.WEBHOOK_SECRET_KEYS = [new]  # the old key may go now
    for endpoint, secret in endpoints:
        stored = WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted
        assert secrets.decrypt(stored) == secret


@pytest.mark.django_db
def test_the_rotate_command_changes_nothing_when_a_secret_opens_with_no_key(settings):
    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]
    endpoint, _ = make_endpoint("https://gate.example/")
    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError, match="opens with no key"):
        call_command("rotate_webhook_secrets_key")
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted == endpoint.secret_encrypted
