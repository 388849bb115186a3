"""Home Assistant MQTT discovery: each camera a device with three entities,
configured by retained messages at {discovery}/{component}/{node}/{object}/config
as Home Assistant's MQTT discovery documentation defines them.

- `event` (a vehicle passed): `state_topic` is the camera's detection topic,
  `event_types` the vehicle types; each payload names its `event_type`, so a
  returning car fires again (a sensor would not change for the same plate).
- `sensor` (detections today): the camera's retained today topic, `count` as the
  state and the counts by vehicle type as attributes. `measurement`, not
  `total_increasing`: a deletion lowers the count, which Home Assistant would
  take for a reset of a meter.
- `image` (the latest snapshot): `image_topic` carries raw JPEG bytes.

Every entity is available while `{prefix}/status` is `online` (the bridge's
last will sets it `offline`). Object ids, unique ids and device identifiers come
from the camera's primary key, so a rename keeps them; an empty retained
config removes an entity.
"""

from dataclasses import dataclass

from django.conf import settings

from detections.ingest.body import VEHICLE_TYPES
from detections.mqtt.topics import Topics

ORIGIN = {"name": "vehicle_monitor"}
# The object ids of one camera's entities: camera_{pk}_{what}.
WHAT = ("detection", "today", "snapshot")


@dataclass(frozen=True)
class CameraOnWire:
    pk: int
    name: str  # as staff named it: the device's name in Home Assistant
    topic: str  # its topic level (topics.camera_topic_names)


def object_id(camera_pk: int, what: str) -> str:
    return f"camera_{camera_pk}_{what}"


def camera_of(object_id_: str) -> int | None:
    """The camera primary key an object id of ours names, or None."""
    parts = object_id_.split("_")
    if len(parts) == 3 and parts[0] == "camera" and parts[1].isdigit() and parts[2] in WHAT:
        return int(parts[1])
    return None


def configs(camera: CameraOnWire, topics: Topics) -> dict[str, dict]:
    """The discovery configs of a camera's entities, by config topic."""
    node = topics.node
    common = {
        "availability": [{"topic": topics.status, "payload_available": "online", "payload_not_available": "offline"}],
        "device": {
            "identifiers": [f"{node}_camera_{camera.pk}"],
            "name": camera.name,
            "manufacturer": "vehicle_monitor",
            "model": "Camera",
        },
        "origin": ORIGIN,
    }
    wanted = {}
    if "detection" in settings.MQTT_EVENTS:
        # Without detection events on the wire the entity would never fire: not configured.
        wanted[topics.config("event", object_id(camera.pk, "detection"))] = {
            "name": "Vehicle",
            "unique_id": f"{node}_camera_{camera.pk}_detection",
            "state_topic": topics.camera(camera.topic, "detection"),
            "event_types": VEHICLE_TYPES,
            "qos": 1,
            "icon": "mdi:car",
            **common,
        }
    wanted[topics.config("sensor", object_id(camera.pk, "today"))] = {
        "name": "Detections today",
        "unique_id": f"{node}_camera_{camera.pk}_today",
        "state_topic": topics.camera(camera.topic, "today"),
        "value_template": "{{ value_json.count }}",
        "json_attributes_topic": topics.camera(camera.topic, "today"),
        "json_attributes_template": "{{ value_json.by_vehicle_type | tojson }}",
        "state_class": "measurement",
        "unit_of_measurement": "detections",
        "qos": 1,
        "icon": "mdi:counter",
        **common,
    }
    wanted[topics.config("image", object_id(camera.pk, "snapshot"))] = {
        "name": "Snapshot",
        "unique_id": f"{node}_camera_{camera.pk}_snapshot",
        "image_topic": topics.camera(camera.topic, "snapshot"),
        "content_type": "image/jpeg",
        **common,
    }
    return wanted


def all_configs(cameras: list[CameraOnWire], topics: Topics) -> dict[str, dict]:
    return {topic: config for camera in cameras for topic, config in configs(camera, topics).items()}


def is_ours(topic: str, topics: Topics) -> bool:
    """A config topic of this installation's cameras (what the bridge may remove)."""
    parts = topic.split("/")
    head = topics.discovery.split("/")
    if len(parts) != len(head) + 4 or parts[: len(head)] != head or parts[-1] != "config":
        return False
    return parts[len(head) + 1] == topics.node and camera_of(parts[len(head) + 2]) is not None
