"""The MQTT bridge's parts that need no broker: names on the wire, today's
count in any time zone, its cursor as a follower of the event log (retention,
the lag on /metrics), and /readyz without the broker."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import ServerProcess, free_port, store_detection
from prometheus_client.parser import text_string_to_metric_families

from detections.core import followers
from detections.models import Camera, FollowerCursor, feed_head
from detections.mqtt import discovery, outgoing
from detections.mqtt.topics import Topics, topic_name, topic_names


def test_a_topic_name_keeps_letters_digits_dash_and_underscore_and_replaces_the_rest():
    assert topic_name("gate-1") == "gate-1"
    assert topic_name("Gate 1/entry+#") == "Gate_1_entry__"
    assert topic_name("Kapı 3") == "Kap__3"


def test_two_cameras_with_one_topic_name_the_first_keeps_it_the_other_gets_its_id():
    assert topic_names([(7, "Gate/1"), (3, "Gate 1"), (4, "yard")]) == {3: "Gate_1", 4: "yard", 7: "Gate_1_7"}


def test_ingest_topics_name_one_camera_level_and_results_are_not_ingest_topics():
    topics = Topics(prefix="site/vm", discovery="homeassistant")
    assert topics.ingest_camera("site/vm/ingest/gate-1") == "gate-1"
    assert topics.ingest_camera("site/vm/ingest/gate-1/result") is None
    assert topics.ingest_camera("site/vm/cameras/gate-1/detection") is None
    assert topics.node == "site_vm"
    assert topics.config("event", "camera_3_detection") == "homeassistant/event/site_vm/camera_3_detection/config"


def test_only_this_installations_camera_configs_count_as_ours():
    topics = Topics(prefix="vm", discovery="homeassistant")
    assert discovery.is_ours("homeassistant/sensor/vm/camera_3_today/config", topics)
    assert not discovery.is_ours("homeassistant/sensor/other/camera_3_today/config", topics)
    assert not discovery.is_ours("homeassistant/sensor/vm/boiler/config", topics)
    assert not discovery.is_ours("homeassistant/status", topics)


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_today_counts_from_local_midnight_to_the_next_in_any_zone(settings, zone):
    """Kolkata's and St John's midnights fall inside UTC hours: those hours are
    counted from the rows, the whole ones from the hourly counters."""
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = zone
    camera = Camera.objects.create(name="gate-1")
    now = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo(zone))
    midnight = now.replace(hour=0)
    times = {
        "just before midnight": midnight - timedelta(microseconds=1),
        "midnight": midnight,
        "a minute after": midnight + timedelta(minutes=1),
        "noon": now,
        "just before the next": midnight + timedelta(days=1) - timedelta(microseconds=1),
        "the next midnight": midnight + timedelta(days=1),
    }
    for n, moment in enumerate(times.values()):
        store_detection(f"trk-{n}", camera="gate-1", detected_at=moment.astimezone(UTC), with_image=False)
    store_detection("truck", camera="gate-1", vehicle_type="truck", detected_at=now, with_image=False)

    assert outgoing.today_counts([camera.pk], now=now) == {camera.pk: {"car": 4, "truck": 1}}


@pytest.mark.django_db(transaction=True)
def test_retention_keeps_what_the_bridge_has_not_published_only_while_mqtt_is_configured(settings):
    FollowerCursor.objects.create(name="mqtt", position=0)
    for n in range(3):
        store_detection(f"trk-{n}", with_image=False)
    settings.MQTT_URL = ""
    assert outgoing.FOLLOWER.reached() == feed_head()
    settings.MQTT_URL = "mqtt://broker.example:1883"
    assert outgoing.FOLLOWER.reached() == 0
    assert followers.lowest_reached() == 0
    assert followers.lag(outgoing.FOLLOWER).events == 3


def test_readyz_does_not_ask_the_broker_and_metrics_show_the_bridges_lag(transactional_db, _media_root, credentials):
    nobody_listens = f"mqtt://127.0.0.1:{free_port()}"
    with ServerProcess(_media_root, credentials, extra_env={"MQTT_URL": nobody_listens}) as server:
        ready = httpx.get(f"{server.base_url}/readyz", timeout=10)
        assert ready.status_code == 200 and set(ready.json()["checks"]) == {"database", "channel_layer"}

        FollowerCursor.objects.create(name="mqtt", position=feed_head())  # a bridge ran once, then stopped
        for n in range(4):
            store_detection(f"trk-{n}", with_image=False)
        lag = {
            family.name: sample.value
            for family in text_string_to_metric_families(server.metrics().text)
            for sample in family.samples
            if sample.labels == {"follower": "mqtt"}
        }
    assert lag["vehicle_monitor_follower_lag_events"] == 4
    assert lag["vehicle_monitor_follower_lag_seconds"] >= 0


@pytest.mark.django_db(transaction=True)
def test_a_step_sends_the_listed_events_to_their_topics_in_order_and_moves_only_past_what_was_acknowledged(settings):
    from django.db import transaction

    from detections.core import counters
    from detections.models import Event, EventKind

    settings.MQTT_URL = "mqtt://broker.example:1883"
    settings.MQTT_EVENTS = ["detection", "journey"]
    topics = Topics(prefix="vm", discovery="homeassistant")
    outgoing.start_following()
    start = feed_head()
    detection = store_detection("trk-1", camera="bridge-n", with_image=False)
    with transaction.atomic():
        (seq,) = counters.take_seqs(1)
        Event.objects.create(
            seq=seq,
            kind=EventKind.JOURNEY,
            detection_id=detection.pk,
            camera="bridge-n",
            vehicle_type="car",
            payload={"type": "journey", "seq": seq, "event": "completed", "camera": "bridge-n"},
        )
    store_detection("trk-2", camera="bridge-n", with_image=False)
    sent = []

    def broker_takes_two(messages):
        sent.extend(messages)
        return min(2, len(messages))

    outgoing.step(broker_takes_two, topics)
    assert [(m.topic, m.seq) for m in sent] == [
        ("vm/cameras/bridge-n/detection", start + 1),
        ("vm/cameras/bridge-n/journey", start + 2),
        ("vm/cameras/bridge-n/detection", start + 3),
    ]
    assert [m.kind for m in sent] == ["detection", "journey", "detection"]
    assert outgoing.FOLLOWER.position() == start + 2  # the third was not acknowledged

    sent.clear()
    outgoing.step(lambda messages: sent.extend(messages) or len(messages), topics)
    assert [m.topic for m in sent] == ["vm/cameras/bridge-n/detection", "vm/cameras/bridge-n/today"]
    assert sent[1].retain and not sent[0].retain
    assert outgoing.FOLLOWER.position() == feed_head()
