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
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
