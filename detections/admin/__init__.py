"""The Django admin: one module per room of the app, registered on import."""

from detections.admin import alerts, detections, webhooks

__all__ = ["alerts", "detections", "webhooks"]
