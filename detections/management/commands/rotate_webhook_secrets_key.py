"""Encrypt every webhook endpoint's secret again with the first key of
WEBHOOK_SECRET_KEYS (the secrets themselves do not change).

    WEBHOOK_SECRET_KEYS=<new key>,<old key> .venv/bin/python manage.py rotate_webhook_secrets_key

Put a new key first, keep the old ones after it, run this once (from one host),
then the old keys may be removed (docs/alerts.md).
"""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from detections.webhooks import secrets


class Command(BaseCommand):
    help = "Re-encrypt every webhook endpoint secret with the first key of WEBHOOK_SECRET_KEYS."

    def handle(self, *args, **options):
        try:
            count = secrets.reencrypt_all()
        except ImproperlyConfigured as problem:
            raise CommandError(str(problem)) from None
        self.stdout.write(f"Re-encrypted {count} webhook secret(s) with the first key.")
