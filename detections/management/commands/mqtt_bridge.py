"""Connect the server to an MQTT broker both ways until stopped (docs/mqtt.md).

    .venv/bin/python manage.py mqtt_bridge     # run (docker-compose.yml's `mqtt`)

MQTT_URL names the broker. Run one bridge per installation: its client id is
fixed (MQTT_CLIENT_ID), so that the broker keeps its session; a second one
would take the session over from the first. SIGTERM or Ctrl-C finishes the
batch of ingested messages in hand, sets {prefix}/status offline and exits;
whatever it had not acknowledged, the broker sends again at the next start.
"""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detections.feed.publisher import publisher
from detections.mqtt.bridge import Bridge
from detections.mqtt.topics import KIND_OF


class Command(BaseCommand):
    help = (
        "Publish events to an MQTT broker (and Home Assistant discovery); with MQTT_INGEST, store what units publish."
    )

    def handle(self, *args, **options):
        if not settings.MQTT_URL:
            raise CommandError("MQTT_URL is not set: name the broker, e.g. MQTT_URL=mqtt://user:password@broker:1883")
        unknown = sorted(set(settings.MQTT_EVENTS) - set(KIND_OF))
        if unknown:
            raise CommandError(f"MQTT_EVENTS names {', '.join(unknown)}; the event types are {', '.join(KIND_OF)}")
        # The events of what the bridge stores go to the sockets from its own loop,
        # queued and sent together, as from a server (one message per batch, not
        # a new event loop and Redis connection per event).
        bridge = Bridge(loop_ready=publisher.attach)
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: bridge.stop())
        address = bridge.address
        self.stdout.write(
            f"Bridging to {address['host']}:{address['port']} under {bridge.topics.prefix}/ "
            f"(events: {', '.join(settings.MQTT_EVENTS)}; ingest {'on' if bridge.ingest_enabled else 'off'}); "
            "SIGTERM or Ctrl-C stops."
        )
        self.stdout.flush()
        bridge.run()
        self.stdout.write("Stopped bridging.")
