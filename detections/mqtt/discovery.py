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

Each site is a device too, with an occupancy `sensor` (the vehicles inside now).

Every entity is available while `{prefix}/status` is `online` (the bridge's
last will sets it `offline`). Object ids, unique ids and device identifiers come
from the camera's (site's) primary key, so a rename keeps them; an empty
retained config removes an entity.
"""

from dataclasses import dataclass

from django.conf import settings

from detections.ingest.body import VEHICLE_TYPES
from detections.mqtt.topics import Topics

ORIGIN = {"name": "vehicle_monitor"}
# The object ids of our entities: {owner}_{pk}_{what}.
WHAT = {"camera": ("detection", "today", "snapshot"), "site": ("occupancy",)}


@dataclass(frozen=True)
class OnWire:
    """A camera or a site as the wire names it."""

    pk: int
    name: str  # as staff named it: the device's name in Home Assistant
    topic: str  # its topic level (topics.topic_names)


def object_id(owner: str, pk: int, what: str) -> str:
    return f"{owner}_{pk}_{what}"


def is_object_id(object_id_: str) -> bool:
    """Whether an object id is one of ours (a camera's or a site's entity)."""
    parts = object_id_.split("_")
    return len(parts) == 3 and parts[0] in WHAT and parts[1].isdigit() and parts[2] in WHAT[parts[0]]


def _common(owner: str, thing: OnWire, topics: Topics) -> dict:
    return {
        "availability": [{"topic": topics.status, "payload_available": "online", "payload_not_available": "offline"}],
        "device": {
            "identifiers": [f"{topics.node}_{owner}_{thing.pk}"],
            "name": thing.name,
            "manufacturer": "vehicle_monitor",
            "model": owner.title(),
        },
        "origin": ORIGIN,
    }


def configs(camera: OnWire, topics: Topics) -> dict[str, dict]:
    """The discovery configs of a camera's entities, by config topic."""
    node = topics.node
    common = _common("camera", camera, topics)
    wanted = {}
    if "detection" in settings.MQTT_EVENTS:
        # Without detection events on the wire the entity would never fire: not configured.
        wanted[topics.config("event", object_id("camera", camera.pk, "detection"))] = {
            "name": "Vehicle",
            "unique_id": f"{node}_camera_{camera.pk}_detection",
            "state_topic": topics.camera(camera.topic, "detection"),
            "event_types": VEHICLE_TYPES,
            "qos": 1,
            "icon": "mdi:car",
            **common,
        }
    wanted[topics.config("sensor", object_id("camera", camera.pk, "today"))] = {
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
    wanted[topics.config("image", object_id("camera", camera.pk, "snapshot"))] = {
        "name": "Snapshot",
        "unique_id": f"{node}_camera_{camera.pk}_snapshot",
        "image_topic": topics.camera(camera.topic, "snapshot"),
        "content_type": "image/jpeg",
        **common,
    }
    return wanted


def site_configs(site: OnWire, topics: Topics) -> dict[str, dict]:
    """The discovery config of a site's occupancy sensor, by config topic."""
    return {
        topics.config("sensor", object_id("site", site.pk, "occupancy")): {
            "name": "Occupancy",
            "unique_id": f"{topics.node}_site_{site.pk}_occupancy",
            "state_topic": topics.site(site.topic, "occupancy"),
            "value_template": "{{ value_json.occupancy }}",
            "json_attributes_topic": topics.site(site.topic, "occupancy"),
            "state_class": "measurement",
            "unit_of_measurement": "vehicles",
            "qos": 1,
            "icon": "mdi:car-multiple",
            **_common("site", site, topics),
        }
    }


def all_configs(cameras: list[OnWire], sites: list[OnWire], topics: Topics) -> dict[str, dict]:
    wanted = {topic: config for camera in cameras for topic, config in configs(camera, topics).items()}
    wanted.update({topic: config for site in sites for topic, config in site_configs(site, topics).items()})
    return wanted


def is_ours(topic: str, topics: Topics) -> bool:
    """A config topic of this installation's cameras and sites (what the bridge may remove)."""
    parts = topic.split("/")
    head = topics.discovery.split("/")
    if len(parts) != len(head) + 4 or parts[: len(head)] != head or parts[-1] != "config":
        return False
    return parts[len(head) + 1] == topics.node and is_object_id(parts[len(head) + 2])
