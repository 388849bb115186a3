"""/api/webhooks/: who may register endpoints, what registration refuses, the
secret shown once and rotated, the messages with their attempts, and resend."""

from datetime import timedelta

import pytest
from conftest import api_client
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.authtoken.models import Token
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from webhook_helpers import ALL_EVENTS, make_endpoint, make_message

from detections.models import Camera, MessageStatus, WebhookAttempt, WebhookEndpoint
from detections.webhooks import secrets, signing, targets

pytestmark = pytest.mark.django_db

PUBLIC_ADDRESS = "93.184.215.14"  # what "gate.example" resolves to here; nothing is ever sent to it


@pytest.fixture(autouse=True)
def names_resolve_without_dns(monkeypatch):
    """Names resolve from this table, never through the network."""
    table = {"gate.example": [PUBLIC_ADDRESS], "lan-gate.example": ["192.168.1.20"]}

    def resolve(host, port):
        if host in table:
            return table[host]
        if host.replace(".", "").isdigit() or ":" in host:
            return [host]
        raise OSError(f"{host} does not resolve")

    monkeypatch.setattr(targets, "resolve", resolve)


@pytest.fixture
def manager():
    user = User.objects.create_user("hooks")
    user.user_permissions.add(Permission.objects.get(codename="manage_webhooks"))
    return api_client(Token.objects.create(user=user).key)


def register(client, **fields):
    return client.post(
        "/api/webhooks/", {"url": "https://gate.example/hook", "events": ALL_EVENTS, **fields}, format="json"
    )


def test_anonymous_callers_get_401_and_users_without_the_permission_403():
    viewer = User.objects.create_user("viewer", is_staff=True)
    for client, status in ((api_client(), 401), (api_client(Token.objects.create(user=viewer).key), 403)):
        assert client.get("/api/webhooks/").status_code == status
        assert register(client).status_code == status
    assert not WebhookEndpoint.objects.exists()


def test_registering_answers_201_with_the_secret_once_and_stores_it_encrypted(manager):
    Camera.objects.create(name="gate-1")
    response = register(manager, cameras=["gate-1"], description="barrier")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["url"] == "https://gate.example/hook" and body["events"] == ALL_EVENTS
    assert body["cameras"] == ["gate-1"] and body["active"] is True and body["disabled_reason"] == ""
    stored = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] not in stored.secret_encrypted
    assert secrets.decrypt(stored.secret_encrypted) == body["secret"]
    for path in ("/api/webhooks/", f"/api/webhooks/{body['id']}/", f"/api/webhooks/{body['id']}"):
        shown = manager.get(path)
        assert shown.status_code == 200
        assert body["secret"] not in shown.content.decode() and "secret" not in str(shown.json())


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://gate.example/hook",
        "gopher://gate.example/",
        "http://10.0.0.1/hook",
        "http://192.168.1.20/hook",
        "http://lan-gate.example/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8000/api/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://nowhere.invalid/hook",
        "https://user:password@gate.example/hook",
        "http://gate.example:0/",
        "not a url",
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "https://gate.example/hook\r\nX-Injected: 1",
        "https://gate.example/a\nb",
        "https://gate.example/a b",
        "https://gate.example/a\tb",
        "https://gate.example/a\x00b",
        "https://gate.example/a\x7fb",
        "https://gate.example/a\u2028b",
    ],
)
def test_registration_refuses_what_is_not_a_public_http_target(manager, url):
    response = register(manager, url=url)

    assert response.status_code == 400, response.content
    assert response.json()["field"] == "url"
    assert response.json()["error"] in ("refused_target", "max_length", "null_characters_not_allowed")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["https://gate.example/a\r\nb", "https://gate.example/a b"])
def test_a_url_with_a_control_character_or_a_space_is_a_400_naming_the_field(manager, url):
    response = register(manager, url=url)

    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["field"], body["error"]) == ("url", "refused_target")
    assert "spaces or control characters" in body["detail"]


def test_surrounding_space_is_trimmed_as_in_every_text_field(manager):
    response = register(manager, url="  https://gate.example/hook \n")

    assert response.status_code == 201, response.content
    assert WebhookEndpoint.objects.get().url == "https://gate.example/hook"


def test_a_network_listed_in_webhook_allowed_networks_may_be_registered(manager, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["192.168.1.0/24"]

    assert register(manager, url="http://lan-gate.example/hook").status_code == 201
    assert register(manager, url="http://192.168.2.1/hook").status_code == 400


@pytest.mark.parametrize(
    "events, error",
    [([], "empty"), (["detection.exploded"], "invalid_choice"), ("alert.triggered", "not_a_list"), (None, "null")],
)
def test_events_must_be_a_non_empty_list_of_known_event_names(manager, events, error):
    response = register(manager, events=events)

    assert response.status_code == 400 and response.json()["error"] == error, response.content
    assert response.json()["field"].startswith("events")


def test_cameras_must_exist_and_repeats_are_dropped(manager):
    Camera.objects.create(name="gate-1")

    refused = register(manager, cameras=["gate-1", "gate-9"])
    assert refused.status_code == 400 and refused.json()["error"] == "unknown_camera"
    accepted = register(manager, cameras=["gate-1", "gate-1"], events=["alert.triggered", "alert.triggered"])
    assert accepted.json()["cameras"] == ["gate-1"] and accepted.json()["events"] == ["alert.triggered"]


def test_patch_changes_what_it_names_checks_a_new_url_and_turning_on_clears_the_reason(manager):
    endpoint, secret = make_endpoint("https://gate.example/hook")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False, disabled_reason="answered 410 Gone")

    refused = manager.patch(f"/api/webhooks/{endpoint.pk}/", {"url": "http://169.254.169.254/"}, format="json")
    changed = manager.patch(f"/api/webhooks/{endpoint.pk}", {"active": True, "description": "new"}, format="json")

    assert refused.status_code == 400 and refused.json()["field"] == "url"
    assert changed.status_code == 200
    assert changed.json()["url"] == "https://gate.example/hook" and changed.json()["description"] == "new"
    assert changed.json()["active"] is True and changed.json()["disabled_reason"] == ""
    assert manager.put(f"/api/webhooks/{endpoint.pk}/", {}, format="json").status_code == 405
    endpoint.refresh_from_db()
    assert secrets.decrypt(endpoint.secret_encrypted) == secret  # untouched


def test_delete_removes_the_endpoint_and_its_messages(manager):
    endpoint, _ = make_endpoint("https://gate.example/hook")
    make_message(endpoint, 1)

    assert manager.delete(f"/api/webhooks/{endpoint.pk}/").status_code == 204
    assert manager.get(f"/api/webhooks/{endpoint.pk}/").status_code == 404
    assert not WebhookEndpoint.objects.exists()


def test_rotate_secret_answers_a_new_secret_and_signatures_made_with_the_old_one_stop_verifying(manager):
    endpoint, old = make_endpoint("https://gate.example/hook")

    response = manager.post(f"/api/webhooks/{endpoint.pk}/rotate-secret/")

    assert response.status_code == 200
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    endpoint.refresh_from_db()
    current = secrets.decrypt(endpoint.secret_encrypted)
    assert current == new
    body = '{"type":"alert.triggered"}'
    headers = signing.signed_headers(message_id="msg_1", body=body, secret=current, at=timezone.now().timestamp())
    assert Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)
    assert new not in manager.get(f"/api/webhooks/{endpoint.pk}/").content.decode()


def test_messages_list_every_attempt_newest_first_and_filter_by_status(manager):
    endpoint, _ = make_endpoint("https://gate.example/hook")
    failed = make_message(endpoint, 1, status=MessageStatus.FAILED, attempt_count=2)
    delivered = make_message(endpoint, 2, status=MessageStatus.DELIVERED, attempt_count=1)
    pending = make_message(endpoint, 3)
    now = timezone.now()
    WebhookAttempt.objects.create(message=failed, attempted_at=now, error="ConnectError: refused", latency_ms=1.5)
    WebhookAttempt.objects.create(message=failed, attempted_at=now, status_code=500, latency_ms=12.0)
    WebhookAttempt.objects.create(message=delivered, attempted_at=now, status_code=204, latency_ms=3.0)
    other, _ = make_endpoint("https://gate.example/other")
    make_message(other, 4)

    listed = manager.get(f"/api/webhooks/{endpoint.pk}/messages/").json()["results"]
    only_failed = manager.get(f"/api/webhooks/{endpoint.pk}/messages", {"status": "failed"}).json()["results"]

    assert [m["message_id"] for m in listed] == [pending.message_id, delivered.message_id, failed.message_id]
    assert [m["message_id"] for m in only_failed] == [failed.message_id]
    shown = only_failed[0]
    assert shown["status"] == "failed" and shown["attempt_count"] == 2 and shown["next_attempt_at"] is None
    assert shown["payload"]["seq"] == 1 and shown["event_type"] == "detection.created"
    assert [(a["status_code"], a["error"]) for a in shown["attempts"]] == [
        (None, "ConnectError: refused"),
        (500, ""),
    ]
    assert shown["attempts"][0]["latency_ms"] == 1.5 and shown["attempts"][0]["attempted_at"].endswith("Z")
    assert listed[0]["next_attempt_at"] is not None  # pending: when it goes next
    assert manager.get(f"/api/webhooks/{endpoint.pk}/messages/", {"status": "lost"}).status_code == 400
    assert manager.get(f"/api/webhooks/{endpoint.pk}/messages/", {"cursor": "bogus"}).status_code == 404


def test_resend_queues_a_failed_message_again_with_its_id_and_a_fresh_schedule(manager):
    endpoint, _ = make_endpoint("https://gate.example/hook")
    long_ago = timezone.now() - timedelta(days=4)
    message = make_message(
        endpoint, 1, status=MessageStatus.FAILED, attempt_count=30, first_attempt_at=long_ago, created_at=long_ago
    )

    response = manager.post(f"/api/webhooks/{endpoint.pk}/messages/{message.message_id}/resend/")

    assert response.status_code == 200, response.content
    assert response.json()["message_id"] == message.message_id and response.json()["status"] == "pending"
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.first_attempt_at is None
    assert message.next_attempt_at >= timezone.now() - timedelta(seconds=5)
    again = manager.post(f"/api/webhooks/{endpoint.pk}/messages/{message.message_id}/resend")
    assert again.status_code == 409 and again.json()["error"] == "not_resendable"


def test_resend_refuses_a_message_of_another_endpoint_and_of_a_disabled_one(manager):
    endpoint, _ = make_endpoint("https://gate.example/hook")
    other, _ = make_endpoint("https://gate.example/other", active=False)
    elsewhere = make_message(other, 1, status=MessageStatus.DELIVERED)

    assert manager.post(f"/api/webhooks/{endpoint.pk}/messages/{elsewhere.message_id}/resend/").status_code == 404
    refused = manager.post(f"/api/webhooks/{other.pk}/messages/{elsewhere.message_id}/resend/")
    assert refused.status_code == 409 and "turned off" in refused.json()["detail"]


def test_the_openapi_schema_documents_every_webhook_operation(manager):
    schema = api_client(Token.objects.get(user__username="hooks").key).get("/api/schema/", {"format": "json"}).json()

    paths = {path: set(operations) for path, operations in schema["paths"].items() if path.startswith("/api/webhooks")}
    assert paths == {
        "/api/webhooks/": {"get", "post"},
        "/api/webhooks/{id}/": {"get", "patch", "delete"},
        "/api/webhooks/{id}/rotate-secret/": {"post"},
        "/api/webhooks/{id}/messages/": {"get"},
        "/api/webhooks/{id}/messages/{message_id}/resend/": {"post"},
    }
    created = schema["paths"]["/api/webhooks/"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"].endswith("/WebhookEndpointWithSecret")
