"""Retention and storage hygiene, for the operator commands `purge_detections`
and `find_orphans`.

Purging deletes through `writes`, one batch per transaction. Nothing here
scans all of the detections table at once or holds it in memory.

Visits are kept on their own clock (VISIT_RETENTION_DAYS): purging detections
derives no visit again (the deletions are marked as a purge's, and the engine
passes them by), and a visit refers to its reads by id only, so one whose
reads are purged keeps its times.
"""

import posixpath
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from detections.core import counters, followers, writes
from detections.core.paging import time_ordered_pages
from detections.models import (
    Alert,
    Detection,
    Event,
    HourlyCount,
    Journey,
    MessageStatus,
    PlateRead,
    Visit,
    VisitState,
    WebhookMessage,
)

# The folders Detection's file fields upload to (models._snapshot_path, _thumbnail_path).
MEDIA_FOLDERS = ("snapshots", "thumbnails")
EVENT_PRUNE_CHUNK = 10_000


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=days)


# --- Purge ---------------------------------------------------------------------------------


def expired(cutoff: datetime):
    return Detection.objects.filter(detected_at__lt=cutoff)


@dataclass
class PurgeReport:
    detections: int = 0
    files: int = 0
    events_pruned: int = 0
    hourly_rows_pruned: int = 0


def purge_detections(
    cutoff: datetime, *, batch_size: int = 500, progress: Callable[[int], None] | None = None
) -> PurgeReport:
    """Delete every detection older than `cutoff` (`writes.detections_delete`:
    counters, events and files follow, every socket is told), then the empty
    hourly counters and the event log before it."""
    report = PurgeReport()
    deleted = writes.detections_delete(
        expired(cutoff),
        batch_size=batch_size,
        progress=(lambda done, _: progress(done)) if progress else None,
        notify_webhooks=False,
    )
    report.detections, report.files = deleted.detections, deleted.files
    report.hourly_rows_pruned = prune_empty_hours(cutoff)
    report.events_pruned = prune_events(cutoff)
    return report


def expired_alerts(now: datetime):
    """Alerts older than ALERT_RETENTION_DAYS (none when it is 0)."""
    if settings.ALERT_RETENTION_DAYS <= 0:
        return Alert.objects.none()
    return Alert.objects.filter(created_at__lt=now - timedelta(days=settings.ALERT_RETENTION_DAYS))


def expired_messages(now: datetime):
    """Delivered webhook messages older than WEBHOOK_MESSAGE_RETENTION_DAYS. Failed
    ones stay until they are resent or their endpoint is deleted."""
    if settings.WEBHOOK_MESSAGE_RETENTION_DAYS <= 0:
        return WebhookMessage.objects.none()
    cutoff = now - timedelta(days=settings.WEBHOOK_MESSAGE_RETENTION_DAYS)
    return WebhookMessage.objects.filter(status=MessageStatus.DELIVERED, delivered_at__lt=cutoff)


def purge_alerts_and_messages(now: datetime, *, batch_size: int = 1000) -> tuple[int, int]:
    """Delete expired alerts and delivered messages (their attempts with them),
    a batch per transaction; how many of each."""
    return _delete_in_batches(expired_alerts(now), batch_size), _delete_in_batches(expired_messages(now), batch_size)


def expired_journeys(now: datetime):
    """Journeys that ended more than JOURNEY_RETENTION_DAYS ago (none when it is 0)."""
    if settings.JOURNEY_RETENTION_DAYS <= 0:
        return Journey.objects.none()
    return Journey.objects.filter(ended_at__lt=now - timedelta(days=settings.JOURNEY_RETENTION_DAYS))


def expired_plate_reads(now: datetime):
    """The journey engine's reads (the matrix's transitions) older than
    JOURNEY_RETENTION_DAYS (none when it is 0)."""
    if settings.JOURNEY_RETENTION_DAYS <= 0:
        return PlateRead.objects.none()
    return PlateRead.objects.filter(detected_at__lt=now - timedelta(days=settings.JOURNEY_RETENTION_DAYS))


def purge_journeys(now: datetime, *, batch_size: int = 1000) -> tuple[int, int]:
    """Delete expired journeys and plate reads, a batch per transaction; how
    many of each. Nothing is derived again: the journeys and transitions left
    stay as they were (the same holds when the detections are purged)."""
    return _delete_in_batches(expired_journeys(now), batch_size), _delete_in_batches(
        expired_plate_reads(now), batch_size
    )


def expired_visits(now: datetime):
    """Visits that began (or, for `entry_missed`, ended) more than
    VISIT_RETENTION_DAYS ago, open ones aside: those still count in occupancy
    (none when it is 0)."""
    if settings.VISIT_RETENTION_DAYS <= 0:
        return Visit.objects.none()
    cutoff = now - timedelta(days=settings.VISIT_RETENTION_DAYS)
    return Visit.objects.filter(anchor_at__lt=cutoff).exclude(state=VisitState.OPEN)


def purge_visits(now: datetime, *, batch_size: int = 1000) -> int:
    """Delete expired visits, site by site along the site's time index, a batch
    per transaction; how many. They raise no event: housekeeping, like a purge
    of detections."""
    deleted = 0
    for site_id in Visit.objects.order_by().values_list("site_id", flat=True).distinct():
        oldest_first = expired_visits(now).filter(site_id=site_id).order_by("anchor_at", "id")
        while ids := list(oldest_first.values_list("pk", flat=True)[:batch_size]):
            with transaction.atomic():
                Visit.objects.filter(pk__in=ids).delete()
            deleted += len(ids)
    return deleted


def _delete_in_batches(queryset, batch_size: int) -> int:
    # Nothing listens to these deletes, so Django deletes each batch (and a
    # message's attempts) with plain DELETE ... WHERE id IN statements.
    deleted = 0
    while ids := list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted


def preview_purge(cutoff: datetime) -> PurgeReport:
    """What `purge_detections(cutoff)` would delete; changes nothing."""
    rows = expired(cutoff)
    files = rows.exclude(image="").count() + rows.exclude(thumbnail="").count()
    return PurgeReport(
        detections=rows.count(),
        files=files,
        events_pruned=prunable_events(cutoff).count(),
        hourly_rows_pruned=_empty_hours(cutoff).count(),
    )


def _empty_hours(cutoff: datetime):
    return HourlyCount.objects.filter(hour__lt=counters.hour_of(cutoff), count=0)


def prune_empty_hours(cutoff: datetime) -> int:
    """Drop hourly counters that fell to zero before the cutoff. A late
    detection of such an hour makes its row again; an increment that lands
    first keeps the row (the condition is checked by the DELETE itself)."""
    return _empty_hours(cutoff).delete()[0]


def _event_boundary(cutoff: datetime) -> int | None:
    """The seq below which every event is older than the cutoff: the log is
    trimmed only at its start (a hole would make resume skip events), the
    newest event always stays, so the log still tells where the feed is, and
    so does every event a follower of the log has not reached (the webhook
    fan-out's among them: with no active endpoint, nothing waits for it)."""
    newest = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
    if newest is None:
        return None
    first_kept = Event.objects.filter(created_at__gte=cutoff).order_by("seq").values_list("seq", flat=True).first()
    boundary = min(first_kept, newest) if first_kept is not None else newest
    return min(boundary, followers.lowest_reached() + 1)


def prunable_events(cutoff: datetime):
    boundary = _event_boundary(cutoff)
    if boundary is None:
        return Event.objects.none()
    return Event.objects.filter(seq__lt=boundary)


def prune_events(cutoff: datetime, *, chunk: int = EVENT_PRUNE_CHUNK) -> int:
    """Delete the events older than the cutoff (only `resume` reads them), in
    seq ranges of `chunk`, never the newest."""
    boundary = _event_boundary(cutoff)
    if boundary is None:
        return 0
    pruned = 0
    oldest = Event.objects.order_by("seq").values_list("seq", flat=True).first()
    while oldest is not None and oldest < boundary:
        upper = min(oldest + chunk, boundary)
        pruned += Event.objects.filter(seq__lt=upper).delete()[0]
        oldest = upper
    return pruned


# --- Orphans ---------------------------------------------------------------------------------


_DAY_FOLDER = re.compile(r"^(?:snapshots|thumbnails)/(\d{4})/(\d{2})/(\d{2})$")


def _names_stored_for(folder: str, files: list[str]) -> set[str]:
    """Which of `folder`'s files a row names."""
    day = _DAY_FOLDER.match(folder)
    if day:
        # The folder is named after the detection's date in the offset it was
        # sent with; a day either side covers every offset.
        start = datetime(*map(int, day.groups()), tzinfo=UTC)
        rows = Detection.objects.filter(
            detected_at__gte=start - timedelta(days=1), detected_at__lt=start + timedelta(days=2)
        )
    else:
        paths = [posixpath.join(folder, name) for name in files]
        rows = Detection.objects.filter(Q(image__in=paths) | Q(thumbnail__in=paths))
    stored = set()
    for image, thumbnail in rows.values_list("image", "thumbnail").iterator():
        stored.add(image)
        stored.add(thumbnail)
    return stored


def find_orphan_files(*, min_age: timedelta) -> Iterator[tuple[str, bool]]:
    """Files under the media folders that no row names: (name, old enough).

    A file younger than `min_age` may belong to a detection whose row is being
    written right now (ingest writes the files first), so it is never an orphan yet.
    """
    now = timezone.now()
    for top in MEDIA_FOLDERS:
        # Folder by folder on disk; one listing of the bucket in an object store.
        for folder, files in default_storage.folders(top):
            if not files:
                continue
            stored = _names_stored_for(folder, files)
            for name in files:
                path = posixpath.join(folder, name)
                if path not in stored:
                    yield path, now - default_storage.get_modified_time(path) >= min_age


class _FolderListings:
    """Recently listed folders: rows come in time order, so their files share folders."""

    def __init__(self, keep: int = 16):
        self.keep = keep
        self.cache: OrderedDict[str, set[str]] = OrderedDict()

    def exists(self, name: str) -> bool:
        folder, base = posixpath.split(name)
        if folder not in self.cache:
            try:
                self.cache[folder] = set(default_storage.listdir(folder)[1])
            except (FileNotFoundError, NotADirectoryError):
                self.cache[folder] = set()
            if len(self.cache) > self.keep:
                self.cache.popitem(last=False)
        self.cache.move_to_end(folder)
        return base in self.cache[folder]


def find_missing_files(*, page_size: int = 2000) -> Iterator[tuple[int, str, str]]:
    """Rows whose image or thumbnail file is gone: (id, field, name)."""
    listings = _FolderListings()
    with_files = Detection.objects.filter(~Q(image="") | ~Q(thumbnail=""))
    for page in time_ordered_pages(with_files, ["image", "thumbnail"], page_size):
        for pk, _, image, thumbnail in page:
            for field_name, name in (("image", image), ("thumbnail", thumbnail)):
                if name and not listings.exists(name):
                    yield pk, field_name, name
