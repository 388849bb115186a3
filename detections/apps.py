from django.apps import AppConfig


class DetectionsConfig(AppConfig):
    name = "detections"
    verbose_name = "Vehicle detections"

    def ready(self):
        from . import signals

        signals.connect()
