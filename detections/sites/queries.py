"""Occupancy and dwell, from stored visits only (never a scan of detections).

Occupancy at t counts the visits with entered_at <= t < ends_at (`Visit.ends_at`
says where each kind of visit stops counting). A window's series reads the
visits that overlap it, by the site's time index, and sweeps them once.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from detections.sites.models import Site, Visit, VisitState

BUCKETS = ("minute", "hour", "day")
# The dwell histogram's bounds, in seconds; a last bucket (upto null) holds the rest.
DWELL_BOUNDS = (900, 1800, 3600, 7200, 14400, 28800, 86400)
# Whole minutes: `dwell` counts by minute of duration.
assert all(bound % 60 == 0 for bound in DWELL_BOUNDS)


def occupancy_now(site_id: int, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return Visit.objects.filter(site_id=site_id, entered_at__lte=now, ends_at__gt=now).count()


@dataclass(frozen=True)
class Bucket:
    t: datetime  # its start, in the site's zone
    max: int
    min: int
    end: int  # at the bucket's end (or now, for the bucket holding now)


def bucket_starts(since: datetime, until: datetime, bucket: str, tz: ZoneInfo) -> list[datetime]:
    """The starts of the buckets covering [since, until), aligned in `tz`."""
    local = since.astimezone(tz)
    if bucket == "minute":
        first = local.replace(second=0, microsecond=0)
    elif bucket == "hour":
        first = local.replace(minute=0, second=0, microsecond=0)
    else:
        first = local.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = []
    moment = first
    while moment < until:
        starts.append(moment)
        moment = _next(moment, bucket, tz)
    return starts


def _next(moment: datetime, bucket: str, tz: ZoneInfo) -> datetime:
    if bucket == "day":
        # Wall-clock days: 23 or 25 hours across a DST change.
        return (moment.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=tz)
    step = timedelta(minutes=1) if bucket == "minute" else timedelta(hours=1)
    # In UTC, then back: an hour is an hour even where the wall clock repeats one.
    return (moment.astimezone(UTC) + step).astimezone(tz)


def occupancy_series(site: Site, since: datetime, until: datetime, bucket: str, tz: ZoneInfo) -> list[Bucket]:
    now = timezone.now()
    until = min(until, now)
    starts = bucket_starts(since, until, bucket, tz)
    if not starts:
        return []
    begin = starts[0]
    # No visit counts longer than absent_after_seconds (the walk ends each kind
    # by then), so only those entered since then can overlap the window: a
    # range of the site's time index (anchor_at is the entry of every visit
    # occupancy counts), not every visit that ends after the window starts.
    earliest = begin - timedelta(seconds=site.absent_after_seconds)
    overlapping = Visit.objects.filter(
        site_id=site.pk, anchor_at__gte=earliest, anchor_at__lt=until, ends_at__gt=begin
    ).values_list("entered_at", "ends_at")
    changes = []
    level = 0
    for entered_at, ends_at in overlapping.iterator(chunk_size=5000):
        if entered_at <= begin:
            level += 1
        else:
            changes.append((entered_at, 1))
        if ends_at < until:
            changes.append((ends_at, -1))
    # At one instant an end counts before an entry: t < ends_at, entered_at <= t.
    changes.sort(key=lambda change: (change[0], change[1]))
    series = []
    index = 0
    for position, start in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else until
        while index < len(changes) and changes[index][0] <= start:
            level += changes[index][1]
            index += 1
        high = low = level
        while index < len(changes) and changes[index][0] < end:
            level += changes[index][1]
            # Several changes at one instant: the level between them is never held.
            if index + 1 == len(changes) or changes[index + 1][0] != changes[index][0]:
                high, low = max(high, level), min(low, level)
            index += 1
        series.append(Bucket(start, high, low, level))
    return series


@dataclass(frozen=True)
class Dwell:
    count: int
    median_seconds: float | None
    p90_seconds: float | None
    histogram: list[tuple[int | None, int]]


def dwell(site_id: int, since: datetime, until: datetime) -> Dwell:
    """Over `closed` visits that ended in [since, until); percentiles by nearest rank.

    A month at a busy site is some 100,000 visits: too many to fetch and sort
    here. MariaDB counts them by whole minute of duration over the covering
    index (site, state, exited_at, duration_seconds); the histogram's bounds
    are whole minutes, and each percentile is then the k-th duration of one
    minute, fetched in a second pass with the other's."""
    closed = f"FROM {Visit._meta.db_table} WHERE site_id = %s AND state = %s AND exited_at >= %s AND exited_at < %s"
    params = [site_id, VisitState.CLOSED, since, until]
    with connection.cursor() as cursor:
        # ORDER BY NULL: MariaDB would sort the groups otherwise.
        cursor.execute(f"SELECT FLOOR(duration_seconds / 60), COUNT(*) {closed} GROUP BY 1 ORDER BY NULL", params)
        by_minute = sorted((int(minute), count) for minute, count in cursor.fetchall())
        count = sum(n for _, n in by_minute)
        ranks = {fraction: _rank_in_minutes(by_minute, count, fraction) for fraction in (0.5, 0.9)}
        wanted = sorted({minute for minute, _ in ranks.values() if minute is not None})
        in_minute = defaultdict(list)
        if wanted:
            cursor.execute(
                f"SELECT duration_seconds {closed} AND FLOOR(duration_seconds / 60) IN ({', '.join(['%s'] * len(wanted))})",
                params + wanted,
            )
            for (duration,) in cursor.fetchall():
                in_minute[math.floor(duration / 60)].append(duration)
    percentiles = {
        fraction: None if minute is None else sorted(in_minute[minute])[offset]
        for fraction, (minute, offset) in ranks.items()
    }
    histogram, bound_index, within = [], 0, 0
    for minute, n in by_minute:
        while bound_index < len(DWELL_BOUNDS) and minute * 60 >= DWELL_BOUNDS[bound_index]:
            histogram.append((DWELL_BOUNDS[bound_index], within))
            bound_index, within = bound_index + 1, 0
        within += n
    while bound_index < len(DWELL_BOUNDS):
        histogram.append((DWELL_BOUNDS[bound_index], within))
        bound_index, within = bound_index + 1, 0
    histogram.append((None, within))
    return Dwell(count, percentiles[0.5], percentiles[0.9], histogram)


def _rank_in_minutes(by_minute: list[tuple[int, int]], count: int, fraction: float) -> tuple[int | None, int]:
    """Where the nearest-rank percentile is (the ceil(fraction * count)-th
    duration, counting from 1): its minute, and its offset among that minute's."""
    if not count:
        return None, 0
    rank = max(1, math.ceil(fraction * count))
    below = 0
    for minute, n in by_minute:
        if below + n >= rank:
            return minute, rank - below - 1
        below += n
    raise AssertionError("the rank is within the count")
