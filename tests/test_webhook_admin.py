"""Webhooks in the admin: the secret shown once, messages filtered by endpoint
and status with their attempts, and resending."""

import pytest
from admin_pages import changelist_rows, page_messages
from django.urls import reverse
from django.utils import timezone
from webhook_helpers import make_endpoint, make_message

from detections.models import MessageStatus, WebhookAttempt, WebhookEndpoint
from detections.webhooks import secrets

pytestmark = pytest.mark.django_db

MESSAGES = reverse("admin:detections_webhookmessage_changelist")


def test_adding_an_endpoint_shows_its_secret_once_and_its_page_never_again(admin_client, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    response = admin_client.post(
        reverse("admin:detections_webhookendpoint_add"),
        {"url": "http://127.0.0.1:9/hook", "events": ["alert.triggered"], "cameras": "[]", "active": "on"},
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    secret = secrets.decrypt(endpoint.secret_encrypted)
    assert any(secret in message for message in page_messages(response))
    page = admin_client.get(reverse("admin:detections_webhookendpoint_change", args=[endpoint.pk]))
    assert page.status_code == 200 and secret not in page.content.decode()
    assert endpoint.events == ["alert.triggered"]


def test_the_admin_refuses_a_target_the_rules_refuse(admin_client):
    response = admin_client.post(
        reverse("admin:detections_webhookendpoint_add"),
        {"url": "http://169.254.169.254/", "events": ["alert.triggered"], "cameras": "[]"},
    )

    assert response.status_code == 200 and "not a public address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_rotating_from_the_admin_shows_the_new_secret_once(admin_client):
    endpoint, old = make_endpoint("https://gate.example/hook")

    response = admin_client.post(
        reverse("admin:detections_webhookendpoint_changelist"),
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
        follow=True,
    )

    endpoint.refresh_from_db()
    new = secrets.decrypt(endpoint.secret_encrypted)
    assert new != old and any(new in message for message in page_messages(response))


def test_messages_filter_by_endpoint_and_status_and_show_their_attempts(admin_client):
    one, _ = make_endpoint("https://gate.example/one")
    two, _ = make_endpoint("https://gate.example/two")
    failed = make_message(one, 1, status=MessageStatus.FAILED)
    delivered = make_message(one, 2, status=MessageStatus.DELIVERED)
    elsewhere = make_message(two, 3, status=MessageStatus.FAILED)
    WebhookAttempt.objects.create(message=failed, attempted_at=timezone.now(), status_code=503, latency_ms=8.0)

    by_endpoint = changelist_rows(admin_client.get(MESSAGES, {"endpoint__id__exact": one.pk}))
    by_status = changelist_rows(admin_client.get(MESSAGES, {"status__exact": "failed"}))
    detail = admin_client.get(reverse("admin:detections_webhookmessage_change", args=[failed.pk]))

    assert set(by_endpoint) == {failed.pk, delivered.pk}
    assert set(by_status) == {failed.pk, elsewhere.pk}
    assert detail.status_code == 200 and "503" in detail.content.decode()


def test_the_resend_action_queues_failed_messages_again_and_says_why_it_skips_pending_ones(admin_client):
    endpoint, _ = make_endpoint("https://gate.example/hook")
    failed = make_message(endpoint, 1, status=MessageStatus.FAILED)
    pending = make_message(endpoint, 2)

    response = admin_client.post(
        MESSAGES, {"action": "resend", "_selected_action": [failed.pk, pending.pk]}, follow=True
    )

    failed.refresh_from_db()
    assert failed.status == MessageStatus.PENDING and failed.first_attempt_at is None
    shown = page_messages(response)
    assert "Resent 1 message(s)." in shown and any(pending.message_id in message for message in shown)
