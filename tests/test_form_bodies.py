"""A create sent as a form or multipart body means what the same JSON means:
a boolean left out takes its default, as it does in JSON (DRF alone would
read it as an unticked checkbox, false)."""

import importlib
import pkgutil
from urllib.parse import urlencode

import pytest
from alert_helpers import client_with
from rest_framework import serializers
from rest_framework.fields import empty
from webhook_helpers import ALL_EVENTS

import detections.api
from detections.models import AlertRule, Watchlist, WebhookEndpoint

pytestmark = pytest.mark.django_db

CREATES = {
    "watch-list": ("/api/watchlists/", "manage_watchlists", {"name": "stolen vehicles"}, Watchlist),
    "alert rule": ("/api/alert-rules/", "manage_watchlists", {"name": "every car"}, AlertRule),
    "webhook": (
        "/api/webhooks/",
        "manage_webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ALL_EVENTS},
        WebhookEndpoint,
    ),
}


@pytest.fixture(autouse=True)
def loopback_webhooks_allowed(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def post(client, path, fields, body):
    if body == "multipart":
        return client.post(path, fields, format="multipart")
    return client.post(path, urlencode(fields, doseq=True), content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("body", ["multipart", "form"])
@pytest.mark.parametrize("what", CREATES)
def test_a_create_that_leaves_active_out_makes_it_active_in_every_body(what, body):
    path, permission, fields, model = CREATES[what]

    response = post(client_with("staff", permission), path, fields, body)

    assert response.status_code == 201, response.content
    assert response.json()["active"] is True
    assert model.objects.get(pk=response.json()["id"]).active is True


@pytest.mark.parametrize("body", ["multipart", "form"])
@pytest.mark.parametrize("what", CREATES)
def test_a_form_that_says_active_false_makes_it_inactive(what, body):
    path, permission, fields, model = CREATES[what]

    response = post(client_with("staff", permission), path, {**fields, "active": "false"}, body)

    assert response.status_code == 201, response.content
    assert model.objects.get(pk=response.json()["id"]).active is False


def test_a_form_patch_that_leaves_active_out_leaves_it_as_it_was():
    listed = Watchlist.objects.create(name="stolen vehicles", active=False)

    response = client_with("staff", "manage_watchlists").patch(
        f"/api/watchlists/{listed.pk}/", {"name": "renamed"}, format="multipart"
    )

    assert response.status_code == 200, response.content
    listed.refresh_from_db()
    assert (listed.name, listed.active) == ("renamed", False)


def _api_serializers():
    for module in pkgutil.iter_modules(detections.api.__path__):
        importlib.import_module(f"detections.api.{module.name}")
    pending = [serializers.Serializer]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        abstract = issubclass(cls, serializers.ModelSerializer) and not hasattr(cls, "Meta")
        if cls.__module__.startswith("detections.") and not abstract:
            yield cls


def test_every_boolean_a_client_writes_may_be_left_out_of_a_form():
    writable = {}
    for cls in _api_serializers():
        for name, field in cls().fields.items():
            if isinstance(field, serializers.BooleanField) and not field.read_only:
                writable[f"{cls.__name__}.{name}"] = field.default_empty_html

    assert writable, "no serializer has a writable boolean: this test looks in the wrong place"
    assert {name: value for name, value in writable.items() if value is not empty} == {}
