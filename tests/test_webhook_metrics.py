"""/metrics of a web process counts each endpoint's pending and failed webhook
messages from the database, wherever the workers run; /readyz ignores webhooks."""

import httpx
from prometheus_client.parser import text_string_to_metric_families
from webhook_helpers import make_endpoint, make_message

from detections.models import MessageStatus


def webhook_queue(server) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return {
        (sample.labels["endpoint"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "vehicle_monitor_webhook_messages"
        for sample in family.samples
    }


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
