"""The MQTT bridge as it runs: `manage.py mqtt_bridge` in a process of its own,
on the test database, against a Mosquitto the test starts (tests/mqtt_helpers.py),
watched by real MQTT clients."""

import json
import uuid

import pytest
from conftest import store_detection
from mqtt_helpers import BridgeProcess, Broker, Watcher

from detections.models import Camera

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def broker(tmp_path):
    started = Broker(tmp_path / "broker")
    yield started
    started.stop()


@pytest.fixture
def prefix():
    return f"vm{uuid.uuid4().hex[:8]}"


def payloads(watcher: Watcher, topic_filter: str) -> list[dict]:
    return [json.loads(m.payload) for m in watcher.messages(topic_filter)]


def test_detections_go_out_in_seq_order_with_the_vehicle_type_as_event_type(broker, prefix):
    camera = Camera.objects.create(name="Gate 1")
    watcher = Watcher(broker, f"{prefix}/#")
    with BridgeProcess(broker, prefix):
        watcher.wait_for(lambda ms: any(m.topic == f"{prefix}/status" and m.payload == b"online" for m in ms), "online")
        stored = [
            store_detection(f"trk-{n}", camera=camera.name, vehicle_type="truck" if n % 2 else "car") for n in range(5)
        ]
        watcher.wait_for(lambda ms: len(payloads(watcher, f"{prefix}/cameras/Gate_1/detection")) == 5, "5 events")
    events = payloads(watcher, f"{prefix}/cameras/Gate_1/detection")
    assert [e["id"] for e in events] == [d.pk for d in stored]
    assert [e["event_type"] for e in events] == ["car", "truck", "car", "truck", "car"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert events[0]["image_url"].startswith("https://monitor.example/media/snapshots/")
    assert "image" not in events[0]
