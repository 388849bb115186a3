"""/metrics of a web process counts each endpoint's pending and failed webhook
messages and the events not fanned out yet from the database, wherever the
workers run; /readyz ignores webhooks."""

import httpx
from conftest import store_detection
from prometheus_client.parser import text_string_to_metric_families
from webhook_helpers import make_endpoint, make_message

from detections.models import MessageStatus
from detections.webhooks import outbox


def families(server) -> list:
    return list(text_string_to_metric_families(server.metrics().text))


def webhook_queue(server) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["endpoint"], sample.labels["status"]): sample.value
        for family in families(server)
        if family.name == "vehicle_monitor_webhook_messages"
        for sample in family.samples
    }


def fanout_lag(server) -> tuple[float, float]:
    """(events, seconds) the fan-out is behind: the lag of the follower named webhooks."""
    names = ("vehicle_monitor_follower_lag_events", "vehicle_monitor_follower_lag_seconds")
    values = {
        family.name: sample.value
        for family in families(server)
        if family.name in names
        for sample in family.samples
        if sample.labels == {"follower": "webhooks"}
    }
    return values[names[0]], values[names[1]]


def test_metrics_show_pending_and_failed_messages_per_endpoint(server):
    busy, _ = make_endpoint("https://gate.example/busy", active=False)  # inactive: nothing is sent
    idle, _ = make_endpoint("https://gate.example/idle")
    for seq in range(3):
        make_message(busy, seq)
    make_message(busy, 9, status=MessageStatus.FAILED)
    make_message(busy, 10, status=MessageStatus.DELIVERED)

    assert webhook_queue(server) == {
        (str(busy.pk), "pending"): 3,
        (str(busy.pk), "failed"): 1,
        (str(idle.pk), "pending"): 0,
        (str(idle.pk), "failed"): 0,
    }
    assert httpx.get(f"{server.base_url}/readyz", timeout=10).json()["checks"].keys() == {"database", "channel_layer"}


def test_metrics_show_the_events_committed_that_no_worker_has_made_messages_of_yet(server):
    assert fanout_lag(server) == (0, 0)
    make_endpoint("https://gate.example/hook")
    for n in range(3):
        store_detection(f"trk-{n}")

    events, seconds = fanout_lag(server)
    assert events == 3 and seconds > 0

    while outbox.fan_out():
        pass
    assert fanout_lag(server) == (0, 0)
    assert list(webhook_queue(server).values()) == [3, 0]  # pending, failed
