"""The MQTT bridge's place in the deployment files: docker-compose.yml runs it
as a service of its own on the web image, restarted when it dies, and only
when asked for (it needs the site's broker)."""

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

ROOT = Path(__file__).resolve().parent.parent


def test_the_mqtt_service_runs_the_bridge_with_the_web_services_image_and_environment():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    bridge, web = services["mqtt"], services["web"]

    assert bridge["image"] == web["image"] and bridge["environment"] == web["environment"]
    assert bridge["command"] == ["python", "manage.py", "mqtt_bridge"]
    assert bridge["restart"] == "unless-stopped"
    assert bridge["profiles"] == ["mqtt"]
    assert "deploy" not in bridge  # one bridge: the broker keeps its session under one client id
    assert bridge["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "ports" not in bridge
    assert {"MQTT_URL", "MQTT_TOPIC_PREFIX", "MQTT_DISCOVERY_PREFIX", "MQTT_EVENTS", "MQTT_INGEST"} <= set(
        web["environment"]
    )


def test_the_bridge_refuses_to_start_without_a_broker(settings):
    settings.MQTT_URL = ""
    with pytest.raises(CommandError, match="MQTT_URL is not set"):
        call_command("mqtt_bridge")


def test_the_bridge_refuses_an_event_type_it_does_not_know(settings):
    settings.MQTT_URL = "mqtt://127.0.0.1:1"
    settings.MQTT_EVENTS = ["detection", "parking"]
    with pytest.raises(CommandError, match="MQTT_EVENTS names parking; the event types are detection, deletion, alert"):
        call_command("mqtt_bridge")
