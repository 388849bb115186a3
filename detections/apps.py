from importlib import import_module

from django.apps import AppConfig


class DetectionsConfig(AppConfig):
    name = "detections"
    verbose_name = "Vehicle detections"

    def ready(self):
        from detections.alerts import config
        from detections.feed import signals

        signals.connect()
        config.connect()
        # Defining its classes registers the OpenAPI extensions.
        import_module("detections.api.schema")
        # Defining a follower of the event log registers it: retention keeps
        # what it has not reached, and /metrics shows its lag, in every process.
        import_module("detections.webhooks.outbox")
        import_module("detections.sites.engine")
        import_module("detections.journeys.engine")
        import_module("detections.mqtt.outgoing")
