"""The MQTT bridge as it runs: `manage.py mqtt_bridge` in a process of its own,
on the test database, against a Mosquitto the test starts with the settings
docs/mqtt.md gives (tests/mqtt_helpers.py), watched by real MQTT clients."""

import json
import uuid

import pytest
from conftest import MOMENT, b64, image_bytes, store_detection
from mqtt_helpers import BridgeProcess, Broker, Watcher, eventually

from detections.core import writes
from detections.ingest.body import VEHICLE_TYPES
from detections.models import Camera, Detection, FollowerCursor, feed_head

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
    return [json.loads(m.payload) for m in watcher.messages(topic_filter) if m.payload]


def online(watcher: Watcher, prefix: str):
    watcher.wait_for(lambda ms: any(m.topic == f"{prefix}/status" and m.payload == b"online" for m in ms), "online")


def in_seq_order_once_each(events: list[dict]) -> list[int]:
    """The seqs as a subscriber that drops repeats sees them (a repeat carries a
    seq at or below the last one handled), checking they only ever go up."""
    handled = []
    for event in events:
        if handled and event["seq"] <= handled[-1]:
            continue
        handled.append(event["seq"])
    return handled


# --- Out -------------------------------------------------------------------------------------


def test_detections_go_out_in_seq_order_with_the_vehicle_type_as_event_type(broker, prefix):
    camera = Camera.objects.create(name="Gate 1")
    watcher = Watcher(broker, f"{prefix}/#")
    with BridgeProcess(broker, prefix):
        online(watcher, prefix)
        stored = [
            store_detection(f"trk-{n}", camera=camera.name, vehicle_type="truck" if n % 2 else "car", plate="34ABC1")
            for n in range(5)
        ]
        watcher.wait_for(lambda ms: len(payloads(watcher, f"{prefix}/cameras/Gate_1/detection")) == 5, "5 events")
        writes.detection_delete(detection=stored[0])
        watcher.wait_for(lambda ms: payloads(watcher, f"{prefix}/cameras/Gate_1/deletion"), "the deletion")
    events = payloads(watcher, f"{prefix}/cameras/Gate_1/detection")
    assert [e["id"] for e in events] == [d.pk for d in stored]
    assert [e["event_type"] for e in events] == ["car", "truck", "car", "truck", "car"]
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + 5))
    first = events[0]
    assert first["type"] == "new_detection" and first["camera"] == "Gate 1" and first["plate"] == "34ABC1"
    assert first["image_url"] == "https://monitor.example" + stored[0].image.url
    assert first["thumbnail_url"] == "https://monitor.example" + stored[0].thumbnail.url
    assert "image" not in first  # no inline thumbnail: it has a topic of its own
    (deletion,) = payloads(watcher, f"{prefix}/cameras/Gate_1/deletion")
    assert deletion["deleted_id"] == stored[0].pk and deletion["seq"] == events[-1]["seq"] + 1
    assert deletion["event_type"] == "car"


def test_snapshot_today_and_status_are_retained_and_the_last_will_says_offline(broker, prefix):
    Camera.objects.create(name="gate-1")
    bridge = BridgeProcess(broker, prefix)
    with bridge:
        online(Watcher(broker, f"{prefix}/status"), prefix)
        store_detection("trk-1", camera="gate-1", vehicle_type="car")
        newest = store_detection("trk-2", camera="gate-1", vehicle_type="bus", size=(96, 64))
        store_detection("trk-3", camera="gate-1", vehicle_type="van", with_image=False)
        watcher = Watcher(broker)  # connected before: sees the live ones
        watcher.client.subscribe(f"{prefix}/cameras/gate-1/#", qos=1)
        eventually(lambda: FollowerCursor.objects.get(name="mqtt").position == feed_head(), what="all published")
        # A client arriving now gets the retained state at once.
        late = Watcher(
            broker, f"{prefix}/cameras/gate-1/snapshot", f"{prefix}/cameras/gate-1/today", f"{prefix}/status"
        )
        late.wait_for(lambda ms: len(ms) == 3, "the retained state")
        by_topic = {m.topic: m for m in late.messages()}
        snapshot = by_topic[f"{prefix}/cameras/gate-1/snapshot"]
        assert snapshot.retain and snapshot.payload == newest.thumbnail.open("rb").read()
        assert snapshot.payload.startswith(b"\xff\xd8")  # raw JPEG, no base64
        today = by_topic[f"{prefix}/cameras/gate-1/today"]
        assert today.retain
        assert json.loads(today.payload)["count"] == 0  # MOMENT is not today
        assert by_topic[f"{prefix}/status"].payload == b"online"
        bridge.kill()  # no clean stop: the broker sends the last will
        late.wait_for(lambda ms: ms and ms[-1].payload == b"offline", "the last will")
    assert Watcher(broker, f"{prefix}/status").wait_for(lambda ms: ms and ms[-1].retain and ms, "retained")[
        -1
    ].payload == (b"offline")


def test_today_counts_the_detections_since_local_midnight_by_type(broker, prefix, settings):
    from django.utils import timezone

    Camera.objects.create(name="gate-1")
    now = timezone.now()
    with BridgeProcess(broker, prefix):
        online(Watcher(broker, f"{prefix}/status"), prefix)
        store_detection("old", camera="gate-1", detected_at=MOMENT)
        store_detection("a", camera="gate-1", vehicle_type="car", detected_at=now)
        store_detection("b", camera="gate-1", vehicle_type="car", detected_at=now)
        store_detection("c", camera="gate-1", vehicle_type="truck", detected_at=now)
        watcher = Watcher(broker, f"{prefix}/cameras/gate-1/today")
        watcher.wait_for(lambda ms: ms and json.loads(ms[-1].payload)["count"] == 3, "today's count")
    today = json.loads(watcher.messages()[-1].payload)
    assert today == {"date": timezone.localdate().isoformat(), "count": 3, "by_vehicle_type": {"car": 2, "truck": 1}}


def test_a_graceful_stop_says_offline(broker, prefix):
    watcher = Watcher(broker, f"{prefix}/status")
    bridge = BridgeProcess(broker, prefix)
    online(watcher, prefix)
    assert bridge.terminate() == 0
    watcher.wait_for(lambda ms: ms and ms[-1].payload == b"offline", "offline")
    assert "Stopped bridging." in bridge.text()


def test_a_broker_down_loses_nothing_events_follow_in_seq_order_when_it_is_back(broker, prefix):
    Camera.objects.create(name="gate-1")
    watcher = Watcher(broker, f"{prefix}/cameras/+/detection", client_id=f"{prefix}-watcher", persistent=True)
    with BridgeProcess(broker, prefix):
        online(Watcher(broker, f"{prefix}/status"), prefix)
        store_detection("before", camera="gate-1", with_image=False)
        watcher.wait_for(lambda ms: len(ms) == 1, "the first event")
        broker.stop()
        stored = [store_detection(f"down-{n}", camera="gate-1", with_image=False) for n in range(30)]
        broker.start()  # the watcher's persistent session was saved with the broker
        watcher.wait_for(lambda ms: len(in_seq_order_once_each(payloads(watcher, "#"))) == 31, "every event")
    events = payloads(watcher, "#")
    assert (
        in_seq_order_once_each(events)[1:]
        == [json.loads(json.dumps(e))["seq"] for e in events if e["id"] in {d.pk for d in stored}][: len(stored)]
    )
    assert {e["id"] for e in events} == {d.pk for d in stored} | {events[0]["id"]}


def test_a_bridge_killed_mid_stream_loses_nothing_and_repeats_only_by_seq(broker, prefix):
    camera = Camera.objects.create(name="gate-1")
    watcher = Watcher(broker, f"{prefix}/cameras/+/detection")
    first = BridgeProcess(broker, prefix)
    with first:
        online(Watcher(broker, f"{prefix}/status"), prefix)
        writes.detections_create(
            [
                writes.NewDetection(camera=camera, tracking_id=f"trk-{n}", vehicle_type="car", detected_at=MOMENT)
                for n in range(1500)
            ]
        )
        watcher.wait_for(lambda ms: len(ms) >= 100, "the first events")
        first.kill()
    with BridgeProcess(broker, prefix):
        watcher.wait_for(lambda ms: len(in_seq_order_once_each(payloads(watcher, "#"))) == 1500, "every event")
    events = payloads(watcher, "#")
    seqs = in_seq_order_once_each(events)
    assert seqs == list(range(seqs[0], seqs[0] + 1500))
    # At least once: what was published twice was in flight when the bridge died.
    assert len(events) - 1500 <= 500


def test_visits_and_site_events_go_to_the_sites_topics_with_its_occupancy_retained(broker, prefix):
    from datetime import UTC, datetime, timedelta

    from detections.sites import edits, engine

    entry, exit_ = Camera.objects.create(name="in-1"), Camera.objects.create(name="out-1")
    site = edits.site_create(
        name="Depot A",
        capacity=1,
        since=datetime.now(UTC) - timedelta(days=1),
        cameras=[edits.CameraRole(entry, "entry"), edits.CameraRole(exit_, "exit")],
    )
    engine.derive_pending()
    watcher = Watcher(broker, f"{prefix}/sites/#", f"{prefix}-ha/sensor/+/+/config")
    with BridgeProcess(broker, prefix, env={"MQTT_EVENTS": "detection,visit,site"}):
        online(Watcher(broker, f"{prefix}/status"), prefix)
        store_detection("trk-1", camera="in-1", plate="34ABC123", detected_at=datetime.now(UTC), with_image=False)
        while engine.step():
            pass
        watcher.wait_for(lambda ms: payloads(watcher, f"{prefix}/sites/Depot_A/site"), "the site's event")
        watcher.wait_for(
            lambda ms: any(
                json.loads(m.payload)["occupancy"] == 1 for m in watcher.messages(f"{prefix}/sites/+/occupancy")
            ),
            "the occupancy",
        )
    (visit,) = payloads(watcher, f"{prefix}/sites/Depot_A/visit")
    assert visit["event"] == "opened" and visit["visit"]["plate"] == "34ABC123" and visit["event_type"] == "car"
    (full,) = payloads(watcher, f"{prefix}/sites/Depot_A/site")
    assert (full["event"], full["event_type"], full["occupancy"], full["capacity"]) == ("full", "full", 1, 1)
    assert json.loads(watcher.messages(f"{prefix}/sites/Depot_A/occupancy")[-1].payload) == {
        "occupancy": 1,
        "capacity": 1,
    }
    sensor = payloads(watcher, f"{prefix}-ha/sensor/{prefix}/site_{site.pk}_occupancy/config")[-1]
    assert sensor == {
        "name": "Occupancy",
        "unique_id": f"{prefix}_site_{site.pk}_occupancy",
        "state_topic": f"{prefix}/sites/Depot_A/occupancy",
        "value_template": "{{ value_json.occupancy }}",
        "json_attributes_topic": f"{prefix}/sites/Depot_A/occupancy",
        "state_class": "measurement",
        "unit_of_measurement": "vehicles",
        "qos": 1,
        "icon": "mdi:car-multiple",
        "availability": [
            {"topic": f"{prefix}/status", "payload_available": "online", "payload_not_available": "offline"}
        ],
        "device": {
            "identifiers": [f"{prefix}_site_{site.pk}"],
            "name": "Depot A",
            "manufacturer": "vehicle_monitor",
            "model": "Site",
        },
        "origin": {"name": "vehicle_monitor"},
    }


# --- Home Assistant discovery -------------------------------------------------------------------


def expected_configs(prefix: str, camera: Camera, topic: str) -> dict[str, dict]:
    node = prefix
    common = {
        "availability": [
            {"topic": f"{prefix}/status", "payload_available": "online", "payload_not_available": "offline"}
        ],
        "device": {
            "identifiers": [f"{node}_camera_{camera.pk}"],
            "name": camera.name,
            "manufacturer": "vehicle_monitor",
            "model": "Camera",
        },
        "origin": {"name": "vehicle_monitor"},
    }
    base = f"{prefix}-ha"
    return {
        f"{base}/event/{node}/camera_{camera.pk}_detection/config": {
            "name": "Vehicle",
            "unique_id": f"{node}_camera_{camera.pk}_detection",
            "state_topic": f"{prefix}/cameras/{topic}/detection",
            "event_types": ["car", "truck", "bus", "motorcycle", "bicycle", "van", "other"],
            "qos": 1,
            "icon": "mdi:car",
            **common,
        },
        f"{base}/sensor/{node}/camera_{camera.pk}_today/config": {
            "name": "Detections today",
            "unique_id": f"{node}_camera_{camera.pk}_today",
            "state_topic": f"{prefix}/cameras/{topic}/today",
            "value_template": "{{ value_json.count }}",
            "json_attributes_topic": f"{prefix}/cameras/{topic}/today",
            "json_attributes_template": "{{ value_json.by_vehicle_type | tojson }}",
            "state_class": "measurement",
            "unit_of_measurement": "detections",
            "qos": 1,
            "icon": "mdi:counter",
            **common,
        },
        f"{base}/image/{node}/camera_{camera.pk}_snapshot/config": {
            "name": "Snapshot",
            "unique_id": f"{node}_camera_{camera.pk}_snapshot",
            "image_topic": f"{prefix}/cameras/{topic}/snapshot",
            "content_type": "image/jpeg",
            **common,
        },
    }


def retained_configs(broker, prefix: str, count: int) -> dict[str, dict]:
    """What a Home Assistant starting now finds: the retained configs (once
    `count` of them are there)."""
    Watcher(broker, f"{prefix}-ha/+/+/+/config").wait_for(
        lambda ms: sum(1 for payload in {m.topic: m.payload for m in ms}.values() if payload) == count,
        f"{count} configs",
    )
    watcher = Watcher(broker, f"{prefix}-ha/+/+/+/config")
    watcher.wait_for(lambda ms: len(ms) == count, f"{count} retained configs")
    watcher.close()
    assert all(m.retain for m in watcher.messages())
    return {m.topic: json.loads(m.payload) for m in watcher.messages()}


def test_every_camera_is_a_home_assistant_device_with_an_event_a_sensor_and_an_image(broker, prefix):
    gate = Camera.objects.create(name="Gate 1")
    same = Camera.objects.create(name="Gate/1")  # the same topic name: gets its id appended
    with BridgeProcess(broker, prefix):
        configs = retained_configs(broker, prefix, 6)
    assert VEHICLE_TYPES == ["car", "truck", "bus", "motorcycle", "bicycle", "van", "other"]
    assert configs == {
        **expected_configs(prefix, gate, "Gate_1"),
        **expected_configs(prefix, same, f"Gate_1_{same.pk}"),
    }


def test_a_rename_keeps_the_ids_a_removal_empties_the_configs_and_home_assistant_birth_republishes(broker, prefix):
    gate = Camera.objects.create(name="gate-1")
    yard = Camera.objects.create(name="yard")
    watcher = Watcher(broker, f"{prefix}-ha/#", f"{prefix}/cameras/#")
    with BridgeProcess(broker, prefix):
        watcher.wait_for(lambda ms: len(ms) >= 6, "the configs")
        watcher.clear()
        gate.name = "Gate North"
        gate.save()
        watcher.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/config")]) >= 6, "the configs again")
        renamed = {m.topic: json.loads(m.payload) for m in watcher.messages(f"{prefix}-ha/#") if m.payload}
        assert {t: c for t, c in renamed.items() if f"camera_{gate.pk}_" in t} == expected_configs(
            prefix, gate, "Gate_North"
        )
        # The old name's state is cleared, the new one has today's count.
        watcher.wait_for(lambda ms: any(m.topic == f"{prefix}/cameras/Gate_North/today" for m in ms), "new state")
        assert any(m.topic == f"{prefix}/cameras/gate-1/today" and m.payload == b"" for m in watcher.messages())

        watcher.clear()
        yard_configs = sorted(expected_configs(prefix, yard, "yard"))
        yard.delete()
        watcher.wait_for(
            lambda ms: sorted(m.topic for m in ms if m.topic in yard_configs and m.payload == b"") == yard_configs,
            "the yard's configs emptied",
        )

        watcher.clear()
        Watcher(broker).publish(f"{prefix}-ha/status", "online")  # Home Assistant started
        watcher.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/config") and m.payload]) >= 3, "again")
    assert set(retained_configs(broker, prefix, 3)) == set(expected_configs(prefix, gate, "Gate_North"))


def test_a_camera_removed_while_the_bridge_was_away_is_removed_at_its_start(broker, prefix):
    gate = Camera.objects.create(name="gate-1")
    yard = Camera.objects.create(name="yard")
    with BridgeProcess(broker, prefix):
        retained_configs(broker, prefix, 6)
    yard.delete()
    with BridgeProcess(broker, prefix):
        configs = retained_configs(broker, prefix, 3)
    assert all(f"camera_{gate.pk}_" in topic for topic in configs)


# --- In ------------------------------------------------------------------------------------------


def unit_body(**overrides) -> dict:
    body = {"id": "trk-1", "vehicle_type": "Car", "time": "2026-11-24T08:15:30.120Z", "plate": "34ABC123"}
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


def results_of(watcher: Watcher, count: int) -> list[dict]:
    watcher.wait_for(lambda ms: len(ms) >= count, f"{count} results")
    return [json.loads(m.payload) for m in watcher.messages()]


INGEST_ENV = {"MQTT_INGEST": "true", "MAX_REQUEST_BYTES": "200000"}


def test_a_good_payload_is_stored_once_and_answered_created_then_duplicate(broker, prefix):
    camera = Camera.objects.create(name="gate-1")
    results = Watcher(broker, f"{prefix}/ingest/+/result")
    events = Watcher(broker, f"{prefix}/cameras/+/detection")
    unit = Watcher(broker)
    with BridgeProcess(broker, prefix, env=INGEST_ENV):
        online(Watcher(broker, f"{prefix}/status"), prefix)
        body = json.dumps(unit_body(vehicle_img=b64(image_bytes()), bbox=[1, 2, 3, 4], confidence=0.5, camera="gate-1"))
        unit.publish(f"{prefix}/ingest/gate-1", body)
        unit.publish(f"{prefix}/ingest/gate-1", body)
        created, duplicate = results_of(results, 2)
        events.wait_for(lambda ms: len(ms) == 1, "one event")
    (stored,) = Detection.objects.all()
    assert stored.camera == camera and stored.vehicle_type == "car" and stored.image and stored.thumbnail
    assert created == {
        "tracking_id": "trk-1",
        "time": "2026-11-24T08:15:30.120000Z",
        "status": "created",
        "id": stored.pk,
        "error": None,
        "detail": None,
        "field": None,
    }
    assert duplicate == {**created, "status": "duplicate"}
    assert len(events.messages()) == 1  # a repeat publishes no second event


@pytest.mark.parametrize(
    ("payload", "topic_camera", "error", "field"),
    [
        (b"{not json", "gate-1", "malformed_request", None),
        (b"\xff\xfe", "gate-1", "malformed_request", None),
        (json.dumps(unit_body(plate="x" * 250_000)).encode(), "gate-1", "request_too_large", None),
        (json.dumps(unit_body()).encode(), "nowhere", "unknown_camera", "camera"),
        (json.dumps(unit_body(vehicle_type="spaceship")).encode(), "gate-1", "invalid_choice", "vehicle_type"),
        (json.dumps(unit_body(time="yesterday")).encode(), "gate-1", "invalid", "time"),
        (json.dumps(unit_body(vehicle_img="not base64!")).encode(), "gate-1", "invalid_image", "vehicle_img"),
        (json.dumps(unit_body(camera="gate-2")).encode(), "gate-1", "camera_mismatch", "camera"),
        (json.dumps([unit_body()]).encode(), "gate-1", "invalid", None),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "too-large",
        "unknown-camera",
        "bad-type",
        "bad-time",
        "bad-image",
        "mismatch",
        "list",
    ],
)
def test_a_bad_payload_is_an_error_naming_the_field_stores_nothing_and_the_bridge_carries_on(
    broker, prefix, payload, topic_camera, error, field
):
    Camera.objects.create(name="gate-1")
    Camera.objects.create(name="gate-2")
    results = Watcher(broker, f"{prefix}/ingest/+/result")
    unit = Watcher(broker)
    with BridgeProcess(broker, prefix, env=INGEST_ENV):
        online(Watcher(broker, f"{prefix}/status"), prefix)
        unit.publish(f"{prefix}/ingest/{topic_camera}", payload)
        unit.publish(f"{prefix}/ingest/gate-1", json.dumps(unit_body(id="after")))
        bad, good = results_of(results, 2)
    assert bad["status"] == "error" and bad["id"] is None
    assert (bad["error"], bad["field"]) == (error, field), bad
    assert bad["detail"]
    assert results.messages()[0].topic == f"{prefix}/ingest/{topic_camera}/result"
    assert good["status"] == "created"
    assert list(Detection.objects.values_list("tracking_id", flat=True)) == ["after"]


def test_a_bridge_killed_between_storing_and_acknowledging_gets_the_message_again_and_stores_it_once(broker, prefix):
    Camera.objects.create(name="gate-1")
    results = Watcher(broker, f"{prefix}/ingest/+/result")
    with BridgeProcess(broker, prefix, env={**INGEST_ENV, "MQTT_TEST_HOLD_ACKS": "true"}) as first:
        online(Watcher(broker, f"{prefix}/status"), prefix)
        Watcher(broker).publish(f"{prefix}/ingest/gate-1", json.dumps(unit_body()))
        (created,) = results_of(results, 1)
        first.kill()  # stored, never acknowledged
    assert created["status"] == "created"
    with BridgeProcess(broker, prefix, env=INGEST_ENV):
        _, again = results_of(results, 2)
    assert again == {**created, "status": "duplicate"}
    assert Detection.objects.count() == 1


def test_messages_published_while_the_bridge_is_away_are_stored_when_it_is_back(broker, prefix):
    Camera.objects.create(name="gate-1")
    with BridgeProcess(broker, prefix, env=INGEST_ENV) as first:
        online(Watcher(broker, f"{prefix}/status"), prefix)
        first.terminate()  # its session, subscription included, stays with the broker
    unit = Watcher(broker)
    for n in range(50):
        unit.publish(f"{prefix}/ingest/gate-1", json.dumps(unit_body(id=f"away-{n}")))
    results = Watcher(broker, f"{prefix}/ingest/+/result")
    with BridgeProcess(broker, prefix, env=INGEST_ENV):
        results_of(results, 50)
    assert Detection.objects.count() == 50


def test_the_documented_acl_binds_each_unit_to_its_cameras(tmp_path):
    secured = Broker(
        tmp_path / "secured",
        accounts={"bridge": "bridge-pw", "unit-gate-1": "gate-pw", "unit-yard": "yard-pw", "homeassistant": "ha-pw"},
    )
    try:
        Camera.objects.create(name="gate-1")
        Camera.objects.create(name="yard-east")
        url = f"mqtt://bridge:bridge-pw@127.0.0.1:{secured.port}"
        results = Watcher(secured, "vehicle_monitor/ingest/+/result", username="bridge", password="bridge-pw")
        gate_unit = Watcher(secured, "vehicle_monitor/ingest/gate-1/result", username="unit-gate-1", password="gate-pw")
        with BridgeProcess(
            secured,
            "vehicle_monitor",
            env={**INGEST_ENV, "MQTT_URL": url, "MQTT_DISCOVERY_PREFIX": "homeassistant"},
        ):
            online(
                Watcher(secured, "vehicle_monitor/status", username="homeassistant", password="ha-pw"),
                "vehicle_monitor",
            )
            # Refused by the broker: another unit's camera (MQTT 3.1.1 drops it silently).
            gate_unit.publish("vehicle_monitor/ingest/yard-east", json.dumps(unit_body(id="trespass")))
            gate_unit.publish("vehicle_monitor/ingest/gate-1", json.dumps(unit_body(id="own")))
            (result,) = results_of(results, 1)
            gate_unit.wait_for(lambda ms: ms, "the unit reads its own result")
        assert result["tracking_id"] == "own"
        assert list(Detection.objects.values_list("tracking_id", flat=True)) == ["own"]
    finally:
        secured.stop()


def test_the_bridge_counts_what_it_published_and_what_it_ingested_for_metrics(broker, prefix, tmp_path):
    from prometheus_client import CollectorRegistry, multiprocess

    Camera.objects.create(name="gate-1")
    shared = tmp_path / "metrics"
    shared.mkdir()
    results = Watcher(broker, f"{prefix}/ingest/+/result")
    with BridgeProcess(broker, prefix, env={**INGEST_ENV, "PROMETHEUS_MULTIPROC_DIR": str(shared)}):
        online(Watcher(broker, f"{prefix}/status"), prefix)
        unit = Watcher(broker)
        unit.publish(f"{prefix}/ingest/gate-1", json.dumps(unit_body()))
        unit.publish(f"{prefix}/ingest/gate-1", b"{")
        results_of(results, 2)
        eventually(lambda: FollowerCursor.objects.get(name="mqtt").position == feed_head(), what="published")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(shared))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name.startswith("vehicle_monitor_mqtt_")
    }
    assert samples[("vehicle_monitor_mqtt_ingested_total", (("outcome", "created"),))] == 1
    assert samples[("vehicle_monitor_mqtt_ingested_total", (("outcome", "error"),))] == 1
    assert samples[("vehicle_monitor_mqtt_published_total", (("kind", "detection"),))] == 1
    assert samples[("vehicle_monitor_mqtt_published_total", (("kind", "discovery"),))] >= 3
    assert samples[("vehicle_monitor_mqtt_published_total", (("kind", "result"),))] == 2
