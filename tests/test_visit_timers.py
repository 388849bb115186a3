"""Overstay, expiry and capacity are raised by time passing (`sites.timers`),
once whatever the number of engine processes; visit events reach webhooks by
the name of what happened, for endpoints whose cameras the visit passed."""

from datetime import timedelta

import pytest
from django.utils import timezone
from test_visit_engine import make_site, read, run_engine

from detections.models import Event, EventKind, Visit, WebhookEndpoint, WebhookMessage
from detections.sites import timers
from detections.webhooks import outbox

pytestmark = pytest.mark.django_db(transaction=True)


def logged(kind):
    return [e.payload for e in Event.objects.filter(kind=kind).order_by("seq")]


def test_an_open_visit_past_its_limit_raises_overstay_once_without_another_read():
    site = make_site(max_stay_seconds=3600)
    read("34ABC123", "in-1", 0)  # twelve hours ago: stored already past its limit
    run_engine()
    assert Visit.objects.get(site=site).overstay is True
    assert timers.tick() == 1
    # A second engine process looking at the same moment finds nothing left to raise.
    assert timers.tick() == 0
    (overstay,) = [p for p in logged(EventKind.VISIT) if p["event"] == "overstay"]
    assert overstay["visit"]["overstay"] is True and overstay["visit"]["plate"] == "34ABC123"


def test_a_visit_that_ended_before_its_overstay_was_raised_never_raises_it():
    make_site(max_stay_seconds=60)
    read("34ABC123", "in-1", 0)
    read("34ABC123", "out-1", 5)
    run_engine()
    assert timers.tick() == 0
    assert not [p for p in logged(EventKind.VISIT) if p["event"] == "overstay"]


def test_an_open_visit_past_its_absence_limit_expires_by_the_timer():
    site = make_site(absent_after_seconds=3600)
    read("34ABC123", "in-1", 0)
    run_engine()
    visit = Visit.objects.get(site=site)
    assert visit.state == "expired"  # twelve hours ago, an hour's limit: the walk says so at once
    # Open, with its limit just passed: the timer expires it, no read needed.
    Visit.objects.filter(pk=visit.pk).update(state="open", ends_at=timezone.now() - timedelta(seconds=1))
    assert timers.tick() >= 1
    assert Visit.objects.get(pk=visit.pk).state == "expired"


def test_capacity_full_then_available_once_each():
    site = make_site(capacity=2, absent_after_seconds=86400)
    read("A1", "in-1", 0)
    read("B2", "in-1", 1)
    run_engine()
    assert [(p["event"], p["occupancy"]) for p in logged(EventKind.SITE)] == [("full", 2)]
    read("C3", "in-1", 2)
    run_engine()
    assert len(logged(EventKind.SITE)) == 1
    read("A1", "out-1", 30)
    run_engine()
    assert len(logged(EventKind.SITE)) == 1  # 2 inside: still at capacity
    read("B2", "out-1", 31)
    run_engine()
    assert [(p["event"], p["occupancy"], p["capacity"]) for p in logged(EventKind.SITE)][-1] == ("available", 1, 2)
    assert site.pk == logged(EventKind.SITE)[-1]["site"]


def test_visit_events_become_webhooks_named_by_what_happened_for_the_endpoints_cameras():
    everywhere = WebhookEndpoint.objects.create(url="https://a.example/", events=["visit.opened", "visit.closed"])
    exits_only = WebhookEndpoint.objects.create(
        url="https://b.example/", events=["visit.opened", "visit.closed"], cameras=["out-1"]
    )
    make_site()
    read("34ABC123", "in-1", 0)
    run_engine()
    read("34ABC123", "out-1", 30)
    run_engine()
    while outbox.fan_out():
        pass
    sent = {
        endpoint: sorted(WebhookMessage.objects.filter(endpoint=endpoint).values_list("event_type", flat=True))
        for endpoint in (everywhere, exits_only)
    }
    assert sent[everywhere] == ["visit.closed", "visit.opened"]
    # Only the closed visit passed out-1.
    assert sent[exits_only] == ["visit.closed"]
