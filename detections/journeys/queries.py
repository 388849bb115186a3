"""What the API and the exports read about journeys: the journey's JSON, travel
times per bucket, and the origin-destination matrix. Each reads what the
engine stored (journeys, and the reads' transitions), never the detections."""

from datetime import UTC, datetime, timedelta
from statistics import fmean
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Max, Min, Q
from django.db.models.expressions import RawSQL

from detections.core.formats import EARLIEST, format_time
from detections.journeys.models import Journey, PlateRead, Route

BUCKETS = {"15m": timedelta(minutes=15), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def journey_json(journey: Journey) -> dict:
    """A journey as the API, the socket and webhooks show it."""
    return {
        "id": journey.pk,
        "route": journey.route_id,
        "plate": journey.plate,
        "from_detection": journey.from_detection,
        "to_detection": journey.to_detection,
        "started_at": format_time(journey.started_at),
        "ended_at": format_time(journey.ended_at),
        "seconds": journey.seconds,
        "speed_kmh": journey.speed_kmh,
        "fuzzy": journey.fuzzy,
        "speeding": journey.speeding,
    }


def nearest_rank(ordered: list[float], percent: int) -> float:
    """The nearest-rank percentile of sorted values: the smallest value with at
    least `percent` % of the values at or below it."""
    return ordered[rank(len(ordered), percent) - 1]


def rank(count: int, percent: int) -> int:
    """The 1-based nearest rank of `percent` among `count` values, in integers:
    ceil(percent / 100 * count) in floats can round one rank too high."""
    return max(1, -(-percent * count // 100))


def bucket_start(moment: datetime, bucket: str, tz: ZoneInfo) -> datetime:
    """The start of the bucket holding `moment`, aligned in `tz`."""
    local = moment.astimezone(tz)
    if bucket == "day":
        # fold=0: the first of two local midnights, should a clock change repeat it.
        return local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)


def bucket_spans(since: datetime, until: datetime, bucket: str, tz: ZoneInfo) -> list[tuple[datetime, str]]:
    """[since, until) cut where bucket_start changes: (first instant, the
    bucket's "t") per span, in time order. A bucket is named by its "t", so two
    spans may share one (a day whose clock goes back over midnight). Spans
    are found a wall-clock step at a time under the offset in force, and a
    step that crosses a clock change is bisected to the microsecond, so any
    offset (half hours, historic local mean times) cuts where bucket_start does."""
    step, tick = BUCKETS[bucket], timedelta(microseconds=1)
    spans: list[tuple[datetime, str]] = []
    moment = since
    while moment < until:
        start = bucket_start(moment, bucket, tz)
        name = start.isoformat()
        # The next wall-clock boundary, were the offset to stay as it is at `moment`.
        end = min(until, (start.replace(tzinfo=None) + step - moment.astimezone(tz).utcoffset()).replace(tzinfo=UTC))
        if bucket_start(end - tick, bucket, tz).isoformat() != name:
            low, high = moment, end - tick  # low in the bucket, high out of it
            while high - low > tick:
                middle = low + (high - low) // 2
                if bucket_start(middle, bucket, tz).isoformat() == name:
                    low = middle
                else:
                    high = middle
            end = high
        if not spans or spans[-1][1] != name:
            spans.append((moment, name))
        moment = end
    return spans


def travel_times(route: Route, since: datetime, until: datetime, bucket: str, tz: ZoneInfo) -> list[dict]:
    """Per bucket of journey end in [since, until): count, median and p85
    seconds (nearest rank), and the speed over the mean time. Buckets without
    a journey are left out."""
    if connection.vendor == "mysql":
        counted = _ranked_in_database(route, since, until, bucket, tz)
    else:
        counted = _ranked_in_python(route, since, until, bucket, tz)
    return [
        {
            "t": name,
            "count": count,
            "median_seconds": median,
            "p85_seconds": p85,
            "mean_speed_kmh": route.distance_m * 3.6 / mean if route.distance_m and mean > 0 else None,
        }
        for name, count, median, p85, mean in counted
    ]


QUARTER_HOUR = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ranked_in_database(route, since, until, bucket, tz) -> list[tuple[str, int, float, float, float]]:
    """MariaDB counts and ranks, and returns two rows a bucket (fetching every
    journey of a week into Python was the read's whole cost). The spans where
    a bucket's "t" stays the same are found in Python, which is what makes any
    time zone exact. When every span starts on a UTC quarter hour (15 minutes,
    hours and days in zones whose offset is whole quarter hours), a span is a
    run of the journeys' stored slots, read in order of seconds from the
    (route, slot, seconds) index; otherwise a journey's span is found from its
    time in microseconds (INTERVAL: a binary search over the spans' starts)."""
    journeys = Journey.objects.filter(route=route, ended_at__gte=since, ended_at__lt=until)
    first, last = journeys.aggregate(first=Min("ended_at"), last=Max("ended_at")).values()
    if first is None:
        return []
    spans = bucket_spans(first, last + timedelta(microseconds=1), bucket, tz)
    names = [name for _, name in spans]
    if len(set(names)) < len(names):
        # A bucket in two spans apart (a clock put back over midnight, at some
        # minutes past): a span's number is then not its bucket's.
        return _ranked_in_python(route, since, until, bucket, tz)
    starts = [start - EPOCH for start, _ in spans[1:]]
    if not starts:
        which = "0"
    elif all(start % QUARTER_HOUR == timedelta(0) for start in starts):
        low, high = (first - EPOCH) // QUARTER_HOUR, (last - EPOCH) // QUARTER_HOUR
        if len(spans) == high - low + 1:
            which = f"slot - {low}"  # a span a slot: 15 minutes on the quarter hour
        else:
            which = f"INTERVAL(slot, {','.join(str(start // QUARTER_HOUR) for start in starts)})"
        journeys = journeys.filter(slot__gte=low, slot__lte=high)
    else:
        cuts = ",".join(str(start // timedelta(microseconds=1)) for start in starts)
        which = f"INTERVAL(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', ended_at), {cuts})"
    inner, params = (
        journeys.order_by().annotate(b=RawSQL(which, ())).values_list("b", "seconds").query.sql_with_params()
    )
    # One window pass: each bucket's count and sum, and only its rows at the two
    # nearest ranks (ceil(n x percent / 100), in integers); a separate GROUP BY
    # and a window ranking against its counts cost a fifth more.
    ranks = " OR ".join(f"rn = GREATEST(1, ({percent} * n + 99) DIV 100)" for percent in (50, 85))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT b, n, total, rn, seconds FROM (
                    SELECT b, seconds, COUNT(*) OVER w AS n, SUM(seconds) OVER w AS total,
                        ROW_NUMBER() OVER (w ORDER BY seconds) AS rn
                    FROM ({inner}) AS j WINDOW w AS (PARTITION BY b)
                ) AS r WHERE {ranks}""",
            params,
        )
        counted, at_rank = {}, {}
        for b, n, total, rn, seconds in cursor.fetchall():
            counted[int(b)] = (n, total)
            at_rank[int(b), rn] = seconds
    return [
        (names[b], n, at_rank[b, rank(n, 50)], at_rank[b, rank(n, 85)], total / n)
        for b, (n, total) in sorted(counted.items())
    ]


def _ranked_in_python(route, since, until, bucket, tz) -> list[tuple[str, int, float, float, float]]:
    """SQLite's: every (ended_at, seconds) of the range, bucketed and ranked here."""
    rows = (
        Journey.objects.filter(route=route, ended_at__gte=since, ended_at__lt=until)
        .order_by("ended_at")
        .values_list("ended_at", "seconds")
    )
    grouped: dict[str, list[float]] = {}
    for ended_at, seconds in rows.iterator(chunk_size=5000):
        grouped.setdefault(bucket_start(ended_at, bucket, tz).isoformat(), []).append(seconds)
    counted = []
    for name, values in grouped.items():
        values.sort()
        counted.append((name, len(values), nearest_rank(values, 50), nearest_rank(values, 85), fmean(values)))
    return counted


def od_matrix(camera_ids: list[int], since: datetime, until: datetime, max_seconds: float) -> list[list[int]]:
    """counts[i][j]: the transitions from camera_ids[i] to camera_ids[j] whose
    later read falls in [since, until), at most `max_seconds` apart. One
    grouped range read of the transition index."""
    index = {camera: i for i, camera in enumerate(camera_ids)}
    counts = [[0] * len(camera_ids) for _ in camera_ids]
    rows = (
        PlateRead.objects.filter(
            detected_at__gte=since,
            detected_at__lt=until,
            from_camera_id__in=camera_ids,
            camera_id__in=camera_ids,
            gap_seconds__lte=max_seconds,
        )
        .order_by()
        .values_list("from_camera_id", "camera_id")
        .annotate(n=Count("*"))
    )
    for from_camera, to_camera, n in rows:
        counts[index[from_camera]][index[to_camera]] = n
    return counts


def usual_windows(at: datetime, weeks: int, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The hour before `at` on the same weekday at the same wall-clock time in
    `tz`, in each of the `weeks` weeks before: [end - 1 hour, end) per week,
    most recent first. Wall-clock, so a clock change between then and now
    keeps "8 in the morning" at 8 in the morning."""
    local = at.astimezone(tz).replace(tzinfo=None)
    windows = []
    for k in range(1, weeks + 1):
        # fold=0: the first of two such times, should a clock change repeat it.
        end = (local - timedelta(weeks=k)).replace(tzinfo=tz, fold=0).astimezone(UTC)
        windows.append((end - timedelta(hours=1), end))
    return windows


def median_in(route: Route, windows: list[tuple[datetime, datetime]]) -> dict:
    """How many of the route's journeys ended in the windows, and their median
    seconds (nearest rank; null without a journey)."""
    ended_in = Q(pk__in=[])
    for since, until in windows:
        if until > EARLIEST:  # nothing is stored before EARLIEST, nor can the database compare with it
            ended_in |= Q(ended_at__gte=max(since, EARLIEST), ended_at__lt=until)
    seconds = sorted(Journey.objects.filter(ended_in, route=route).values_list("seconds", flat=True))
    return {"count": len(seconds), "median_seconds": nearest_rank(seconds, 50) if seconds else None}


def travel_time_now(route: Route, at: datetime, weeks: int, tz: ZoneInfo) -> dict:
    """The route's travel time now (the journeys that ended in the hour before
    `at`) against its usual (those that ended in the same hour of the same
    weekday in the `weeks` weeks before, taken together): a few hours of
    journeys, read on the (route, ended_at) index."""
    hour = (at - timedelta(hours=1), at)
    windows = usual_windows(at, weeks, tz)
    return {
        "route": route.pk,
        "at": format_time(at),
        "now": {"since": format_time(hour[0]), "until": format_time(hour[1]), **median_in(route, [hour])},
        "usual": {
            "weeks": weeks,
            "windows": [{"since": format_time(since), "until": format_time(until)} for since, until in windows],
            **median_in(route, windows),
        },
    }
