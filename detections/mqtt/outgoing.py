"""What the bridge publishes from the event log: the follower named "mqtt".

A step (`detections.core.followers`) takes the events after the cursor (a page
at most), turns them into messages in seq order, hands them to the broker at
QoS 1 and moves the cursor only past the events whose messages the broker has
acknowledged. So a broker that is down for an hour holds the cursor where it
was, and the events wait in the log (retention keeps what a follower has not
reached); a bridge killed mid-step moved nothing, and the next step publishes
the same events again. Delivery is therefore at least once: a repeat happens
only around a restart of the bridge or the broker, and carries the same `seq`.

Besides the events of MQTT_EVENTS, each step publishes the state topics its
events changed, retained: a camera's latest thumbnail (raw JPEG) and its
detections since local midnight, a site's occupancy. The step's transaction stays open while the
broker acknowledges (the cursor row is locked, so one bridge at a time steps):
the wait is bounded well within DATABASE_IDLE_TRANSACTION_SECONDS.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from detections.core import counters, events, images
from detections.core.followers import Follower, Progress, Span
from detections.models import Camera, Detection, Event, EventKind, HourlyCount
from detections.mqtt import topics as wire
from detections.mqtt.discovery import OnWire
from detections.sites.models import Site
from detections.sites.queries import occupancy_now

# Seqs one step reads at most.
PAGE = 500


def _needs_nothing_up_to(position: int, head: int) -> int:
    # Without a broker configured, no bridge runs: retention keeps nothing for it.
    return position if settings.MQTT_URL else head


FOLLOWER = Follower("mqtt", starts_at_head=True, needs_nothing_up_to=_needs_nothing_up_to)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    kind: str  # its label in the metrics
    seq: int  # the event it belongs to: done once this message is acknowledged


# What publishes: messages in order -> how many of them, from the first, the
# broker acknowledged.
Publish = Callable[[list[Message]], int]


def on_wire(model) -> list[OnWire]:
    """Every camera (or site) with its topic name."""
    rows = list(model.objects.order_by("pk").values_list("pk", "name"))
    names = wire.topic_names(rows)
    return [OnWire(pk=pk, name=name, topic=names[pk]) for pk, name in rows]


def start_following():
    """Make the cursor (at the head of the log) unless it exists: the events
    committed from now on are the bridge's to publish, even before it reaches
    the broker."""
    FOLLOWER.step(lambda span: span.after, wait=True)


def step(publish: Publish, topics: wire.Topics, page: int = PAGE) -> Progress:
    """One step of the follower; another bridge's step is left to it."""
    return FOLLOWER.step(lambda span: _work(span, publish, topics, page))


def _work(span: Span, publish: Publish, topics: wire.Topics, page: int) -> int:
    upper = min(span.head, span.after + page)
    by_name = {camera.name: camera for camera in on_wire(Camera)}
    sites = {site.pk: site for site in on_wire(Site)}
    published = {wire.KIND_OF[name] for name in settings.MQTT_EVENTS if name in wire.KIND_OF}
    messages: list[Message] = []
    touched: dict[int, OnWire] = {}  # cameras whose count changed
    latest_thumbnail: dict[int, int] = {}  # camera -> its newest detection with a thumbnail
    occupied: dict[int, OnWire] = {}  # sites whose occupancy may have changed
    for event in span.events(upper).only("seq", "kind", "camera", "vehicle_type", "detection_id", "payload"):
        if event.kind in wire.SITE_KINDS:
            site = sites.get(site_of(event))
            if site is None:
                continue  # deleted since, with its visits
            occupied[site.pk] = site
            if event.kind in published:
                messages.append(event_message(event, topics.site(site.topic, wire.EVENT_TYPE_OF[event.kind])))
            continue
        camera = by_name.get(event.camera)
        if event.kind in published:
            level = camera.topic if camera else wire.topic_name(event.camera)
            messages.append(event_message(event, topics.camera(level, wire.EVENT_TYPE_OF[event.kind])))
        if camera is None:
            continue  # deleted since: it has no state topics any more
        if event.kind in (EventKind.NEW_DETECTION, EventKind.DELETION):
            touched[camera.pk] = camera
        if event.kind == EventKind.NEW_DETECTION and event.payload.get("thumbnail_url"):
            latest_thumbnail[camera.pk] = event.detection_id
    # The events go out before the state is read, which would only delay them.
    done = publish(messages)
    if done < len(messages):
        return messages[done].seq - 1  # every event before the first one unacknowledged
    # The state belongs to the page's last seq: if the broker misses it, the step
    # is taken again from that event on, and so is the state.
    state = snapshot_messages(latest_thumbnail, touched, topics, seq=upper)
    state += today_messages(list(touched.values()), topics, seq=upper)
    state += occupancy_messages(list(occupied.values()), topics, seq=upper)
    return upper if publish(state) == len(state) else upper - 1


def site_of(event: Event) -> int | None:
    """The site a visit or site event is about."""
    if event.kind == EventKind.SITE:
        return event.payload.get("site")
    return (event.payload.get("visit") or {}).get("site")


def event_message(event: Event, topic: str) -> Message:
    """The socket message without the inline image, URLs absolute, and the
    `event_type` Home Assistant's event entity fires with (the vehicle type)."""
    payload = events.with_absolute_urls(event.payload)
    # A site's event (full, available) is about no vehicle: what happened, then.
    payload["event_type"] = event.vehicle_type or event.payload.get("event")
    return Message(
        topic=topic,
        payload=json.dumps(payload, separators=(",", ":")).encode(),
        retain=False,
        kind=wire.EVENT_TYPE_OF[event.kind],
        seq=event.seq,
    )


def snapshot_messages(
    newest: dict[int, int], cameras: dict[int, OnWire], topics: wire.Topics, *, seq: int
) -> list[Message]:
    """Each camera's latest thumbnail, retained, from the detections named in
    `newest` (camera -> detection); one deleted since sends nothing."""
    names = dict(Detection.objects.filter(pk__in=newest.values()).values_list("pk", "thumbnail"))
    messages = []
    for camera_pk, detection_pk in newest.items():
        data = images.read_stored(names.get(detection_pk))
        if data:
            messages.append(Message(topics.camera(cameras[camera_pk].topic, "snapshot"), data, True, "snapshot", seq))
    return messages


def latest_snapshot_messages(cameras: list[OnWire], topics: wire.Topics, *, seq: int) -> list[Message]:
    """The latest thumbnail of each of `cameras`, read from the detections
    (a camera renamed: its snapshot under the new name)."""
    newest = {}
    for camera in cameras:
        found = (
            Detection.objects.filter(camera_id=camera.pk)
            .exclude(thumbnail="")
            .order_by("-received_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
        if found:
            newest[camera.pk] = found
    return snapshot_messages(newest, {camera.pk: camera for camera in cameras}, topics, seq=seq)


def local_day(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Local midnight today (DJANGO_TIME_ZONE) and the next one."""
    local = (now or timezone.now()).astimezone(ZoneInfo(settings.TIME_ZONE))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Wall-clock arithmetic (one zone): the next midnight, whether the day has 23, 24 or 25 hours.
    return start, start + timedelta(days=1)


def today_counts(camera_pks: list[int], now: datetime | None = None) -> dict[int, dict[str, int]]:
    """Detections since local midnight (by their time, as the statistics count
    them) of each camera, by vehicle type: from the hourly counters, and for a
    zone whose midnight falls inside a UTC hour, that hour's parts from the rows."""
    start, end = (moment.astimezone(UTC) for moment in local_day(now))
    whole_from, whole_to = counters.hour_of(start), counters.hour_of(end)
    if whole_from < start:
        whole_from += timedelta(hours=1)
    counts: dict[int, dict[str, int]] = {pk: {} for pk in camera_pks}
    rows = (
        HourlyCount.objects.filter(camera_id__in=camera_pks, hour__gte=whole_from, hour__lt=whole_to)
        .order_by()
        .values("camera_id", "vehicle_type")
        .annotate(n=Sum("count"))
    )
    for row in rows:
        _add(counts, row["camera_id"], row["vehicle_type"], row["n"])
    for since, until in ((start, whole_from), (whole_to, end)):
        if since < until:  # the parts of the day outside whole UTC hours
            rows = (
                Detection.objects.filter(camera_id__in=camera_pks, detected_at__gte=since, detected_at__lt=until)
                .order_by()
                .values("camera_id", "vehicle_type")
                .annotate(n=Count("id"))
            )
            for row in rows:
                _add(counts, row["camera_id"], row["vehicle_type"], row["n"])
    return counts


def _add(counts: dict, camera_pk: int, vehicle_type: str, n: int):
    if n:
        by_type = counts[camera_pk]
        by_type[vehicle_type] = by_type.get(vehicle_type, 0) + n


def today_messages(cameras: list[OnWire], topics: wire.Topics, *, seq: int = 0) -> list[Message]:
    if not cameras:
        return []
    day, _ = local_day()
    counts = today_counts([camera.pk for camera in cameras])
    return [
        Message(
            topics.camera(camera.topic, "today"),
            json.dumps(
                {
                    "date": day.date().isoformat(),
                    "count": sum(counts[camera.pk].values()),
                    "by_vehicle_type": dict(sorted(counts[camera.pk].items())),
                },
                separators=(",", ":"),
            ).encode(),
            True,
            "today",
            seq,
        )
        for camera in cameras
    ]


def occupancy_messages(sites: list[OnWire], topics: wire.Topics, *, seq: int = 0) -> list[Message]:
    """Each site's occupancy now, retained: {"occupancy", "capacity"}."""
    capacity = dict(Site.objects.filter(pk__in=[site.pk for site in sites]).values_list("pk", "capacity"))
    return [
        Message(
            topics.site(site.topic, "occupancy"),
            json.dumps(
                {"occupancy": occupancy_now(site.pk), "capacity": capacity.get(site.pk)}, separators=(",", ":")
            ).encode(),
            True,
            "occupancy",
            seq,
        )
        for site in sites
        if site.pk in capacity
    ]
