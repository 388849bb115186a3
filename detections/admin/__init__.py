"""The Django admin: one module per room of the app, registered on import."""

from detections.admin import alerts, detections, journeys, sites, webhooks

__all__ = ["alerts", "detections", "journeys", "sites", "webhooks"]
