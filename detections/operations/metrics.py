"""Prometheus metrics, served at /metrics (see `health.metrics`).

By default each server process counts for itself and /metrics shows that
process only: scrape every process (each daphne listens on its own port). With
PROMETHEUS_MULTIPROC_DIR set to an empty folder shared by the processes of one
host, every process writes its values there and /metrics on any of them shows
the sum for the host (prometheus_client's multiprocess mode). The folder must
be emptied before the processes start (docs/operations.md).

Names follow Prometheus' conventions: a unit suffix, `_total` on counters.
Labels stay bounded: cameras exist only once staff have created them, and the
vehicle types and event kinds are fixed lists.
"""

import glob
import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

DETECTIONS_INGESTED = Counter(
    "vehicle_monitor_detections_ingested",
    "Detections stored by the ingest API (retries of a stored detection not counted).",
    ["camera", "vehicle_type"],
)
INGEST_LATENCY = Histogram(
    "vehicle_monitor_ingest_latency_seconds",
    "Time to answer one POST of a detection (validation, image checks, storage, publish).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INGEST_GROUP_SIZE = Histogram(
    "vehicle_monitor_ingest_group_size",
    "Detections written together in one transaction by the group commit (single POSTs).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)
INGEST_GROUP_SECONDS = Histogram(
    "vehicle_monitor_ingest_group_seconds",
    "Time to write and commit one group of the group commit (files, rows, counters, events).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
SOCKETS_CONNECTED = Gauge(
    "vehicle_monitor_sockets_connected",
    "Feed sockets currently open (authenticated viewers).",
    # In multiprocess mode: the sum over the processes that are alive.
    multiprocess_mode="livesum",
)
REQUESTS_IN_FLIGHT = Gauge(
    "vehicle_monitor_http_requests_in_flight",
    "HTTP requests in progress, out of HTTP_MAX_IN_FLIGHT per process (probes and /metrics not counted).",
    multiprocess_mode="livesum",
)
REQUESTS_REFUSED = Counter(
    "vehicle_monitor_http_requests_refused",
    "HTTP requests answered 503 at once, by reason (overloaded: HTTP_MAX_IN_FLIGHT were in progress).",
    ["reason"],
)
FEED_INBOX_OVERFLOWS = Counter(
    "vehicle_monitor_feed_inbox_overflows",
    "Times a socket fell INBOX_LIMIT live events behind (a client not reading): it then reads them from the log.",
)
EVENTS_PUBLISHED = Counter(
    "vehicle_monitor_events_published",
    "Events sent to the channel layer.",
    ["kind"],
)
EVENTS_PUBLISH_FAILED = Counter(
    "vehicle_monitor_events_publish_failed",
    "Events the channel layer did not take (stored anyway; clients get them on resume).",
    ["kind"],
)

ALERTS_RAISED = Counter(
    "vehicle_monitor_alerts_raised",
    "Alerts raised, by rule.",
    ["rule"],
)
ALERTS_HELD_BACK = Counter(
    "vehicle_monitor_alerts_held_back",
    "Matches a rule's cooldown held back (not stored), by rule.",
    ["rule"],
)


def detection_ingested(camera: str, vehicle_type: str):
    DETECTIONS_INGESTED.labels(camera=camera, vehicle_type=vehicle_type).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_processes(path: str):
    """Drop the live gauges of processes that have ended (a crash, a restart),
    so `sockets_connected` counts only the sockets of processes still running."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.search(name)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def exposition() -> tuple[bytes, str]:
    """The text Prometheus scrapes, and its content type."""
    path = multiprocess_dir()
    if path:
        _forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        registry.register(WEBHOOK_QUEUE)
        registry.register(FOLLOWER_LAG)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# --- Webhooks ---------------------------------------------------------------------------------
# The attempts and latencies are counted by the delivery worker (`deliver_webhooks`):
# they reach a web process's /metrics when both share PROMETHEUS_MULTIPROC_DIR.
# The queue's state is read from the database at each scrape, so every web
# process shows it wherever the workers run.

WEBHOOK_ATTEMPTS = Counter(
    "vehicle_monitor_webhook_attempts",
    "Webhook delivery attempts, by outcome: delivered (2xx), rejected (another status), timeout, "
    "network_error or refused (the target failed the address check).",
    ["outcome"],
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "vehicle_monitor_webhook_delivery_seconds",
    "Time from a webhook message's creation (its event's commit) to the receiver's 2xx.",
    buckets=(0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0),
)


# --- MQTT -------------------------------------------------------------------------------------
# Counted by the bridge (`mqtt_bridge`): they reach a web process's /metrics when
# both share PROMETHEUS_MULTIPROC_DIR. Its lag behind the event log is the
# follower lag below (follower="mqtt"), read from the database at each scrape.

MQTT_PUBLISHED = Counter(
    "vehicle_monitor_mqtt_published",
    "Messages published, by kind: an event type (detection, deletion, alert, ...), snapshot, today, "
    "occupancy, discovery and status once the broker acknowledged them (QoS 1); result once sent.",
    ["kind"],
)
MQTT_PUBLISH_FAILED = Counter(
    "vehicle_monitor_mqtt_publish_failed",
    "Messages the broker did not acknowledge in time or the client could not send, by kind "
    "(events among them are published again from the log: none is lost).",
    ["kind"],
)
MQTT_INGESTED = Counter(
    "vehicle_monitor_mqtt_ingested",
    "Detections received over MQTT, by outcome: created, duplicate or error (nothing stored).",
    ["outcome"],
)


class WebhookQueueCollector:
    """vehicle_monitor_webhook_messages{endpoint, status}: pending and failed
    messages of every endpoint (0 included). Counted when /metrics is scraped."""

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "vehicle_monitor_webhook_messages",
            "Webhook messages waiting to be delivered (pending) or given up on (failed), per endpoint.",
            labels=["endpoint", "status"],
        )

    def describe(self):
        # What registering asks for: without it the registry would collect, and
        # query the database, at import.
        yield self._family()

    def collect(self):
        from django.db import DatabaseError
        from django.db.models import Count

        from detections.models import MessageStatus, WebhookEndpoint, WebhookMessage

        messages = self._family()
        statuses = (MessageStatus.PENDING, MessageStatus.FAILED)
        try:
            counts = {pk: dict.fromkeys(statuses, 0) for pk in WebhookEndpoint.objects.values_list("pk", flat=True)}
            for row in (
                WebhookMessage.objects.filter(status__in=statuses)
                .order_by()
                .values("endpoint_id", "status")
                .annotate(n=Count("id"))
            ):
                counts.setdefault(row["endpoint_id"], dict.fromkeys(statuses, 0))[row["status"]] = row["n"]
        except DatabaseError:
            # /metrics keeps answering while the database is away (/readyz says so).
            return
        for pk, by_status in sorted(counts.items()):
            for status, n in by_status.items():
                messages.add_metric([str(pk), status], n)
        yield messages


class FollowerLagCollector:
    """How far behind the log each follower is (`detections.core.followers`):
    the committed events it has not handled yet, and the age of the oldest of
    them. Counted when /metrics is scraped, so every web process shows it
    wherever the followers run."""

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "vehicle_monitor_follower_lag_events",
                "Events committed that a follower of the event log (webhooks: the webhook fan-out) has not "
                "handled yet: it grows while its process is not running, or falls behind.",
                labels=["follower"],
            ),
            GaugeMetricFamily(
                "vehicle_monitor_follower_lag_seconds",
                "Age of the oldest event a follower of the event log has not handled yet (0: none waits).",
                labels=["follower"],
            ),
        )

    def describe(self):
        yield from self._families()

    def collect(self):
        from django.db import DatabaseError

        from detections.core import followers

        lag_events, lag_seconds = self._families()
        try:
            lags = {name: followers.lag(follower) for name, follower in sorted(followers.FOLLOWERS.items())}
        except DatabaseError:
            return
        for name, lag in lags.items():
            lag_events.add_metric([name], lag.events)
            lag_seconds.add_metric([name], lag.seconds)
        yield lag_events
        yield lag_seconds


WEBHOOK_QUEUE = WebhookQueueCollector()
REGISTRY.register(WEBHOOK_QUEUE)
FOLLOWER_LAG = FollowerLagCollector()
REGISTRY.register(FOLLOWER_LAG)
