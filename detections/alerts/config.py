"""Watch-lists and alert rules as each process holds them.

They are read on every created detection, so each process keeps them in memory,
indexed (`matching.PlateIndex`). Every change to them bumps one revision
number in the database, in the transaction of the change (model signals, and
`changed()` for bulk statements that send none); a process looks at that
number at most every ALERT_CONFIG_CHECK_SECONDS and reloads when it moved, so
an edit takes effect on every process within a second.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.db.models.signals import post_delete, post_save

from detections.alerts import schedules
from detections.alerts.matching import Entry, PlateIndex
from detections.models import (
    AlertConfigRevision,
    AlertRule,
    MatchMode,
    Watchlist,
    WatchlistEntry,
)

logger = logging.getLogger(__name__)

# Not the webhook endpoints: the delivery workers read them at each fan-out step
# and the write path never does, so an endpoint edit reloads no rules.
WATCHED_MODELS = (Watchlist, WatchlistEntry, AlertRule)


def changed():
    """Say that watch-lists or rules changed (call inside the change's transaction)."""
    if not AlertConfigRevision.objects.filter(pk=1).update(revision=F("revision") + 1):
        AlertConfigRevision.objects.get_or_create(pk=1, defaults={"revision": 1})


def revision() -> int:
    return AlertConfigRevision.objects.filter(pk=1).values_list("revision", flat=True).first() or 0


def _on_change(sender, **kwargs):
    changed()


def connect():
    for model in WATCHED_MODELS:
        post_save.connect(_on_change, sender=model, dispatch_uid=f"alert_config_saved_{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"alert_config_deleted_{model.__name__}")


@dataclass(frozen=True)
class Rule:
    """An active alert rule, its conditions ready to test."""

    id: int
    name: str
    watchlist_id: int | None
    cameras: frozenset[str]
    vehicle_types: frozenset[str]
    min_confidence: float | None
    schedule: schedules.Schedule | None
    cooldown: timedelta


@dataclass(frozen=True)
class Snapshot:
    revision: int
    rules: tuple[Rule, ...] = ()
    watchlists: dict[int, tuple[str, PlateIndex]] = field(default_factory=dict)  # id -> (name, index)


def load() -> Snapshot:
    """Read the active rules and the lists they use."""
    number = revision()
    rules = tuple(
        Rule(
            id=rule.pk,
            name=rule.name,
            watchlist_id=rule.watchlist_id,
            cameras=frozenset(rule.cameras or ()),
            vehicle_types=frozenset(rule.vehicle_types or ()),
            min_confidence=rule.min_confidence,
            schedule=schedules.Schedule.parse(rule.schedule) if rule.schedule else None,
            cooldown=timedelta(seconds=rule.cooldown_seconds),
        )
        for rule in AlertRule.objects.filter(active=True).filter(Q(watchlist=None) | Q(watchlist__active=True))
    )
    used = {rule.watchlist_id for rule in rules if rule.watchlist_id is not None}
    watchlists = {}
    for watchlist in Watchlist.objects.filter(pk__in=used):
        entries = [
            Entry(id=pk, plate=plate, normalized=normalized, expires_at=expires_at)
            for pk, plate, normalized, expires_at in watchlist.entries.values_list(
                "pk", "plate", "plate_normalized", "expires_at"
            )
        ]
        edits = watchlist.max_edits if watchlist.match == MatchMode.FUZZY else 0
        watchlists[watchlist.pk] = (watchlist.name, PlateIndex(entries, edits))
    return Snapshot(revision=number, rules=rules, watchlists=watchlists)


# A configuration that loads faster than this is reloaded by the thread that
# found it changed; a larger one (100,000 watched plates take about half a
# second to read and index) in a thread of its own, while ingest carries on
# with the one it has.
INLINE_LOAD_SECONDS = 0.05


class _Current:
    def __init__(self):
        self.snapshot: Snapshot | None = None
        self.checked_at = float("-inf")
        self.load_seconds = 0.0
        self.lock = threading.Lock()
        self.loading: threading.Thread | None = None

    def get(self) -> Snapshot:
        snapshot = self.snapshot
        if snapshot is not None and time.monotonic() - self.checked_at < settings.ALERT_CONFIG_CHECK_SECONDS:
            return snapshot
        # One thread checks; the others carry on with what they have.
        if not self.lock.acquire(blocking=snapshot is None):
            return snapshot
        try:
            latest = revision()
            self.checked_at = time.monotonic()
            if snapshot is None or (snapshot.revision != latest and self.load_seconds < INLINE_LOAD_SECONDS):
                self._load()
            elif snapshot.revision != latest and not (self.loading and self.loading.is_alive()):
                self.loading = threading.Thread(target=self._load_apart, name="alert-config", daemon=True)
                self.loading.start()
            return self.snapshot
        finally:
            self.lock.release()

    def _load(self):
        started = time.monotonic()
        self.snapshot = load()
        self.load_seconds = time.monotonic() - started

    def _load_apart(self):
        try:
            self._load()
        except Exception:
            logger.exception("could not reload the watch-lists and rules; keeping the ones in force")
        finally:
            connection.close()  # this thread's own, opened by the load

    def forget(self):
        """Load again at the next use (tests: a rolled-back database repeats revision numbers)."""
        self.snapshot = None
        self.load_seconds = 0.0


_current = _Current()


def current() -> Snapshot:
    """The rules and lists in force, at most ALERT_CONFIG_CHECK_SECONDS old."""
    return _current.get()


def forget():
    _current.forget()
