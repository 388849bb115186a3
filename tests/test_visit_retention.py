"""Retention and visits: purging old detections derives no visit again and a
visit whose reads are purged keeps its times (and survives a site edit that
derives history again); visits have their own clock, VISIT_RETENTION_DAYS,
which `purge_detections` applies to visits no longer open; on real MariaDB."""

import io
from datetime import timedelta
from itertools import count

import pytest
from django.core.management import call_command
from django.utils import timezone
from test_visit_engine import camera, run_engine

from detections.core.writes import detection_create
from detections.models import Detection, Event, EventKind, Visit
from detections.operations import retention
from detections.sites import edits, engine

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now().replace(microsecond=0)
_tracks = count(1)


def read(plate, camera_name, *, days_ago, minutes=0):
    return detection_create(
        camera=camera(camera_name),
        tracking_id=f"ret-{next(_tracks)}",
        vehicle_type="car",
        detected_at=NOW - timedelta(days=days_ago) + timedelta(minutes=minutes),
        plate=plate,
    ).detection


def depot(**fields):
    fields.setdefault("since", NOW - timedelta(days=400))
    site = edits.site_create(
        name="Depot R",
        cameras=[edits.CameraRole(camera("in-1"), "entry"), edits.CameraRole(camera("out-1"), "exit")],
        **fields,
    )
    engine.derive_pending()
    return site


def purge(*args) -> str:
    out = io.StringIO()
    call_command("purge_detections", *args, stdout=out, stderr=out)
    return out.getvalue()


def stored_visits(site) -> list[tuple]:
    return sorted(
        Visit.objects.filter(site=site).values_list(
            "id", "plate", "state", "entered_at", "exited_at", "duration_seconds", "entry_detection_id"
        )
    )


def test_purging_old_reads_keeps_their_visits_and_times_and_derives_nothing_again():
    site = depot()
    read("34ABC123", "in-1", days_ago=40)
    read("34ABC123", "out-1", days_ago=40, minutes=90)
    read("06XYZ77", "in-1", days_ago=0.5)
    run_engine()
    before = stored_visits(site)
    assert [(plate, state) for _, plate, state, *_ in before] == [("34ABC123", "closed"), ("06XYZ77", "open")]
    visit_events = Event.objects.filter(kind=EventKind.VISIT).count()

    assert "Deleted 2 detection(s)" in purge("--older-than", "30")
    assert Detection.objects.count() == 1
    run_engine()
    assert stored_visits(site) == before
    assert Event.objects.filter(kind=EventKind.VISIT).count() == visit_events

    # A site edit derives the history again from the reads still stored: the
    # visit whose reads are gone stays as it was.
    edits.site_update(site, repeat_seconds=30)
    assert engine.derive_pending() is True
    assert stored_visits(site) == before


def test_visits_older_than_their_retention_are_purged_unless_open(settings):
    settings.VISIT_RETENTION_DAYS = 365
    site = depot(since=NOW - timedelta(days=800), absent_after_seconds=800 * 86400)
    read("OLD1", "in-1", days_ago=500)
    read("OLD1", "out-1", days_ago=500, minutes=30)  # closed, 500 days ago: purged
    read("GONE2", "out-1", days_ago=400)  # entry_missed, 400 days ago: purged
    read("OPEN3", "in-1", days_ago=450)  # still open: it counts in occupancy, kept
    read("NEW4", "in-1", days_ago=100)
    read("NEW4", "out-1", days_ago=100, minutes=30)  # closed, 100 days ago: kept
    run_engine()
    assert Visit.objects.filter(site=site).count() == 4

    assert "Dry run: would delete 2 visit(s)." in purge("--dry-run")
    assert Visit.objects.filter(site=site).count() == 4
    assert "Deleted 2 visit(s)." in purge()
    assert sorted(Visit.objects.filter(site=site).values_list("plate", "state")) == [
        ("NEW4", "closed"),
        ("OPEN3", "open"),
    ]
    # The reads are another matter: RETENTION_DAYS (0 here) keeps them.
    assert Detection.objects.count() == 6


def test_a_visit_retention_of_zero_keeps_every_visit(settings):
    settings.VISIT_RETENTION_DAYS = 0
    site = depot(since=NOW - timedelta(days=800))
    read("OLD1", "in-1", days_ago=700)
    read("OLD1", "out-1", days_ago=700, minutes=30)
    run_engine()
    assert retention.purge_visits(timezone.now()) == 0
    assert Visit.objects.filter(site=site).count() == 1


def test_the_purge_goes_batch_by_batch_over_every_site(settings):
    settings.VISIT_RETENTION_DAYS = 30
    sites = [depot()]
    sites.append(
        edits.site_create(
            name="Depot S",
            since=NOW - timedelta(days=400),
            cameras=[edits.CameraRole(camera("in-2"), "entry"), edits.CameraRole(camera("out-1"), "exit")],
        )
    )
    engine.derive_pending()
    for n in range(5):
        read(f"P{n}", "in-1", days_ago=60 + n)
        read(f"Q{n}", "in-2", days_ago=60 + n)
        read(f"P{n}", "out-1", days_ago=60 + n, minutes=10)
        read(f"Q{n}", "out-1", days_ago=60 + n, minutes=20)
    run_engine()
    assert Visit.objects.count() > 10
    expired = retention.expired_visits(timezone.now()).count()
    assert retention.purge_visits(timezone.now(), batch_size=3) == expired
    assert not retention.expired_visits(timezone.now()).exists()
