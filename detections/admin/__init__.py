"""The Django admin: one module per room of the app, registered on import."""

from detections.admin import detections

__all__ = ["detections"]
