from django.apps import AppConfig


class DetectionsConfig(AppConfig):
    name = "detections"
    verbose_name = "Vehicle detections"

    def ready(self):
        from . import schema, signals  # noqa: F401 (schema registers OpenAPI extensions)

        signals.connect()
