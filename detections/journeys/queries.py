"""What the API and the exports read about journeys: the journey's JSON, travel
times per bucket, and the origin-destination matrix. Each reads what the
engine stored (journeys, and the reads' transitions), never the detections."""

import math
from datetime import datetime, timedelta
from statistics import fmean
from zoneinfo import ZoneInfo

from django.db.models import Count

from detections.core.formats import format_time
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


def nearest_rank(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of sorted values: the smallest value with at
    least `percent` % of the values at or below it."""
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def bucket_start(moment: datetime, bucket: str, tz: ZoneInfo) -> datetime:
    """The start of the bucket holding `moment`, aligned in `tz`."""
    local = moment.astimezone(tz)
    if bucket == "day":
        # fold=0: the first of two local midnights, should a clock change repeat it.
        return local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)


def travel_times(route: Route, since: datetime, until: datetime, bucket: str, tz: ZoneInfo) -> list[dict]:
    """Per bucket of journey end in [since, until): count, median and p85
    seconds (nearest rank), and the speed over the mean time. Buckets without
    a journey are left out. One range read of the (route, ended_at, seconds)
    index."""
    rows = (
        Journey.objects.filter(route=route, ended_at__gte=since, ended_at__lt=until)
        .order_by("ended_at")
        .values_list("ended_at", "seconds")
    )
    grouped: dict[datetime, list[float]] = {}
    for ended_at, seconds in rows.iterator(chunk_size=5000):
        grouped.setdefault(bucket_start(ended_at, bucket, tz), []).append(seconds)
    series = []
    for start, values in grouped.items():
        values.sort()
        mean = fmean(values)
        series.append(
            {
                "t": start.isoformat(),
                "count": len(values),
                "median_seconds": nearest_rank(values, 50),
                "p85_seconds": nearest_rank(values, 85),
                "mean_speed_kmh": route.distance_m * 3.6 / mean if route.distance_m and mean > 0 else None,
            }
        )
    return series


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
