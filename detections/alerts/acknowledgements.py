"""Acknowledging alerts, from the API and the admin alike."""

from django.db.models import QuerySet
from django.utils import timezone


def acknowledge(alerts: QuerySet, user) -> int:
    """Record `user` and now on the alerts not acknowledged yet, in one UPDATE:
    an alert acknowledged before keeps its first who and when, however many
    people press the button at once. Answers how many were acknowledged now."""
    return alerts.filter(acknowledged_at__isnull=True).update(acknowledged_at=timezone.now(), acknowledged_by=user)
