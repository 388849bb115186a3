"""Statistics, read from the counters (never a scan of the detections table).

Totals and breakdowns come from CameraTypeTotal (one row per camera and type);
anything bounded in time comes from HourlyCount, whose rows in a window number
at most cameras x types x hours, whatever the size of the detections table.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.db.models import Q, Sum

from detections.core import counters
from detections.models import CameraTypeTotal, Detection, HourlyCount, VehicleType

BUCKETS = ("hour", "day")
DEFAULT_WINDOW = {"hour": timedelta(hours=24), "day": timedelta(days=30)}
MAX_POINTS = 24 * 366


@dataclass(frozen=True)
class StatsQuery:
    since: datetime | None = None
    until: datetime | None = None
    camera: str | None = None
    vehicle_type: str | None = None
    bucket: str = "hour"
    time_zone: tzinfo = UTC
    recent: int = 20


def _filtered(queryset, query: StatsQuery):
    """Camera and vehicle-type filters, for detections and counter rows alike."""
    if query.camera:
        queryset = queryset.filter(camera__name=query.camera)
    if query.vehicle_type:
        queryset = queryset.filter(vehicle_type=query.vehicle_type)
    return queryset


def breakdowns(query: StatsQuery) -> tuple[dict, dict]:
    """Counts by vehicle type and by camera, within the query's filters."""
    if query.since or query.until:
        source = _filtered(HourlyCount.objects.all(), query)
        if query.since:
            source = source.filter(hour__gte=counters.hour_of(query.since))
        if query.until:
            source = source.filter(hour__lt=query.until)
    else:
        source = _filtered(CameraTypeTotal.objects.all(), query)
    by_type = {vehicle_type: 0 for vehicle_type in VehicleType.values}
    by_camera = defaultdict(int)
    rows = source.values("camera__name", "vehicle_type").annotate(n=Sum("count")).filter(n__gt=0)
    for row in rows:
        by_type[row["vehicle_type"]] += row["n"]
        by_camera[row["camera__name"]] += row["n"]
    return by_type, dict(sorted(by_camera.items()))


def series(query: StatsQuery, now: datetime) -> dict:
    """Detections per hour or per local day, by vehicle type, zero-filled."""
    until = query.until or now
    since = query.since or until - DEFAULT_WINDOW[query.bucket]
    starts = _bucket_starts(since, until, query.bucket, query.time_zone)
    if len(starts) > MAX_POINTS:
        raise ValueError(f"the window holds {len(starts)} {query.bucket}s; the most is {MAX_POINTS}")
    points = {start: defaultdict(int) for start in starts}
    # One row per hour with a column per vehicle type: a month of days is 720 rows
    # to put into local days, not 720 x types.
    vehicle_types = VehicleType.values  # computed on each access: once here, not per row
    per_type = {
        f"n_{vehicle_type}": Sum("count", filter=Q(vehicle_type=vehicle_type)) for vehicle_type in vehicle_types
    }
    hourly = (
        _filtered(HourlyCount.objects.all(), query)
        .filter(hour__gte=counters.hour_of(starts[0]) if starts else since, hour__lt=until)
        .values("hour")
        .annotate(**per_type)
    )
    for row in hourly:
        start = _bucket_start(row["hour"], query.bucket, query.time_zone)
        if start in points:
            for vehicle_type in vehicle_types:
                if row[f"n_{vehicle_type}"] is not None:  # None: no counter row of this type
                    points[start][vehicle_type] += row[f"n_{vehicle_type}"]
    return {
        "bucket": query.bucket,
        "time_zone": str(query.time_zone),
        "since": _iso(since),
        "until": _iso(until),
        "points": [
            {"start": start.isoformat(), "count": sum(by_type.values()), "by_vehicle_type": dict(by_type)}
            for start, by_type in points.items()
        ],
    }


def _bucket_start(moment: datetime, bucket: str, time_zone: tzinfo) -> datetime:
    local = moment.astimezone(time_zone)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _bucket_starts(since: datetime, until: datetime, bucket: str, time_zone: tzinfo) -> list[datetime]:
    """Local bucket starts covering [since, until), stepping in UTC so that
    daylight-saving changes neither skip nor repeat a bucket."""
    starts = []
    cursor = since.astimezone(UTC)
    while cursor < until:
        start = _bucket_start(cursor, bucket, time_zone)
        if not starts or start != starts[-1]:
            starts.append(start)
        cursor = counters.hour_of(cursor) + timedelta(hours=1)
        if len(starts) > MAX_POINTS:
            break
    return starts


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def recent_logs(query: StatsQuery):
    """The latest detections within the query's filters, newest first."""
    # prefetch, not select_related: a join lets MySQL start from the small camera
    # table and sort every detection; alone, the newest rows come off an index.
    detections = _filtered(Detection.objects.prefetch_related("camera"), query)
    if query.since:
        detections = detections.filter(detected_at__gte=query.since)
    if query.until:
        detections = detections.filter(detected_at__lt=query.until)
    return detections.order_by("-detected_at", "-id")[: query.recent]
