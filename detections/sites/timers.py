"""What time passing does to visits, raised by a timer rather than by the
next read (protocol.md): an open visit passing `max_stay_seconds` raises
`overstay` once; one passing `absent_after_seconds` becomes `expired`; and
occupancy falling with it may make a full site `available`.

Each runs in a transaction of its own that claims its rows with
SKIP LOCKED and changes them so they no longer match: however many engine
processes run, on whatever hosts, each event is raised once.
"""

from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from detections.sites import engine
from detections.sites.models import Site, Visit, VisitState
from detections.sites.queries import occupancy_now

BATCH = 200


def tick(now=None) -> int:
    """Raise what is due now; the number of events raised."""
    now = now or timezone.now()
    return _overstays(now) + _expiries(now) + _capacities(now)


def _overstays(now) -> int:
    with transaction.atomic():
        due = list(
            Visit.objects.select_for_update(skip_locked=True).filter(
                state=VisitState.OPEN, overstay_raised=False, overstay_at__lte=now
            )[:BATCH]
        )
        if not due:
            return 0
        Visit.objects.filter(pk__in=[visit.pk for visit in due]).update(
            overstay=True, overstay_raised=True, updated_at=now
        )
        for visit in due:
            visit.overstay, visit.overstay_raised = True, True
        _log_by_site([("overstay", visit) for visit in due], now)
    return len(due)


def _expiries(now) -> int:
    with transaction.atomic():
        due = list(
            Visit.objects.select_for_update(skip_locked=True).filter(state=VisitState.OPEN, ends_at__lt=now)[:BATCH]
        )
        if not due:
            return 0
        Visit.objects.filter(pk__in=[visit.pk for visit in due]).update(
            state=VisitState.EXPIRED, overstay_at=None, updated_at=now
        )
        for visit in due:
            visit.state = VisitState.EXPIRED
        _log_by_site([("changed", visit) for visit in due], now)
    return len(due)


def _capacities(now) -> int:
    raised = 0
    for site_id in Site.objects.filter(active=True, capacity__isnull=False).values_list("pk", flat=True):
        with transaction.atomic():
            if not Site.objects.select_for_update(skip_locked=True).filter(pk=site_id).exists():
                continue  # another process is looking at it
            crossing = engine.capacity_crossing(site_id, occupancy_now(site_id, now))
            if crossing:
                engine.log_visit_events([], crossing[2], site_row=crossing)
                raised += 1
    return raised


def _log_by_site(logged: list[tuple[str, Visit]], now):
    by_site = defaultdict(list)
    for name, visit in logged:
        by_site[visit.site_id].append((name, visit))
    for site_id, site_logged in by_site.items():
        occupancy = occupancy_now(site_id, now)
        engine.log_visit_events(site_logged, occupancy, site_row=engine.capacity_crossing(site_id, occupancy))
