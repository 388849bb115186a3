from django.apps import AppConfig


class DetectionsConfig(AppConfig):
    name = "detections"
    verbose_name = "Vehicle detections"

    def ready(self):
        from detections.alerts import config
        from detections.api import schema  # noqa: F401 (schema registers OpenAPI extensions)
        from detections.feed import signals

        signals.connect()
        config.connect()
