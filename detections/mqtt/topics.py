"""Names on the wire: every topic the bridge publishes or subscribes to, and
how a camera's or a site's name becomes a topic level (protocol.md, "MQTT").

A camera's (or site's) topic name is its name with every character outside
A-Za-z0-9_- replaced by `_`; when two cameras would get the same one, the one
made first keeps it and the others get `_{id}` appended, so adding a camera
never moves another's topics. Home Assistant's ids come from primary keys, never names, so
a rename keeps the entities (and their history) and moves only the state topics.
"""

import re
from dataclasses import dataclass

from django.conf import settings

from detections.models import EventKind

_OUTSIDE = re.compile(r"[^A-Za-z0-9_-]")

# The event kinds of the log, as MQTT_EVENTS and the topics name them. Visits and
# sites go to the site's topics, the others to the camera's (a journey: its end camera's).
EVENT_TYPE_OF = {
    EventKind.NEW_DETECTION: "detection",
    EventKind.DELETION: "deletion",
    EventKind.ALERT: "alert",
    EventKind.DETECTION_UPDATED: "detection_updated",
    EventKind.VISIT: "visit",
    EventKind.SITE: "site",
    EventKind.JOURNEY: "journey",
}
KIND_OF = {event_type: kind for kind, event_type in EVENT_TYPE_OF.items()}
SITE_KINDS = frozenset({EventKind.VISIT, EventKind.SITE})


def topic_name(name: str) -> str:
    """A name as one topic level: nothing MQTT reads as a separator or wildcard."""
    return _OUTSIDE.sub("_", name) or "_"


def topic_names(rows: list[tuple[int, str]]) -> dict[int, str]:
    """The topic name of each camera (or each site): (primary key, name) -> by primary key."""
    taken: dict[str, int] = {}
    names = {}
    for pk, name in sorted(rows):
        plain = topic_name(name)
        names[pk] = plain if taken.setdefault(plain, pk) == pk else f"{plain}_{pk}"
    return names


@dataclass(frozen=True)
class Topics:
    prefix: str
    discovery: str

    @classmethod
    def from_settings(cls) -> "Topics":
        return cls(prefix=settings.MQTT_TOPIC_PREFIX, discovery=settings.MQTT_DISCOVERY_PREFIX)

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    def camera(self, camera: str, what: str) -> str:
        """{prefix}/cameras/{camera}/{what}: an event type, snapshot or today."""
        return f"{self.prefix}/cameras/{camera}/{what}"

    def site(self, site: str, what: str) -> str:
        """{prefix}/sites/{site}/{what}: visit, site or occupancy."""
        return f"{self.prefix}/sites/{site}/{what}"

    @property
    def ingest_filter(self) -> str:
        """What the bridge subscribes to for ingest: one level, so results
        ({prefix}/ingest/{camera}/result) do not come back to it."""
        return f"{self.prefix}/ingest/+"

    def ingest_camera(self, topic: str) -> str | None:
        """The camera level of an ingest topic, or None for any other topic."""
        head = f"{self.prefix}/ingest/"
        if not topic.startswith(head) or "/" in topic[len(head) :]:
            return None
        return topic[len(head) :]

    def result(self, camera: str) -> str:
        return f"{self.prefix}/ingest/{camera}/result"

    @property
    def node(self) -> str:
        """The discovery node id: this installation, told apart from another one
        on the same broker by its topic prefix."""
        return topic_name(self.prefix)

    def config(self, component: str, object_id: str) -> str:
        return f"{self.discovery}/{component}/{self.node}/{object_id}/config"

    @property
    def config_filter(self) -> str:
        """Every discovery config of this installation (retained on the broker)."""
        return f"{self.discovery}/+/{self.node}/+/config"

    @property
    def home_assistant_status(self) -> str:
        """Where Home Assistant announces itself (its birth and last will)."""
        return f"{self.discovery}/status"
