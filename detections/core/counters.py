"""Counters kept inside the write transaction of every creation and deletion.

They make `count` in every event and the statistics cost the same at a thousand
rows and at ten million: nothing here ever scans the detections table.
`rebuild()` recomputes them from the table, for an operator who needs it.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Count, F
from django.db.models.functions import TruncHour

from detections.models import CameraTypeTotal, Detection, FeedState, HourlyCount


@dataclass(frozen=True)
class FeedPosition:
    seq: int
    count: int


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _upsert_increments(model, key_columns: list[str], deltas: dict[tuple, int]):
    """Add to model.count for many rows in one statement, creating rows as
    needed, so concurrent writers never race on the insert: `deltas` maps each
    key (values in the order of `key_columns`) to what its count gains."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = key_columns + ["count"]
    column_sql = ", ".join(connection.ops.quote_name(c) for c in columns)
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # Rows in key order: concurrent writers lock them in the same order, so they
    # queue behind each other instead of deadlocking.
    rows = sorted(deltas.items())
    params = [value for key, delta in rows for value in (*key, delta)]
    count_col = connection.ops.quote_name("count")
    if connection.vendor == "mysql":
        conflict = f"ON DUPLICATE KEY UPDATE {count_col} = {count_col} + VALUES({count_col})"
    else:  # SQLite and PostgreSQL
        key_sql = ", ".join(connection.ops.quote_name(c) for c in key_columns)
        conflict = f"ON CONFLICT ({key_sql}) DO UPDATE SET {count_col} = {table}.{count_col} + excluded.{count_col}"
    values_sql = ", ".join([row_sql] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({column_sql}) VALUES {values_sql} {conflict}", params)


def count_changes(detections, *, delta: int) -> list[FeedPosition]:
    """Count detections in (delta=1) or out (delta=-1), taking a seq for each:
    the feed position after each of them, in list order.

    Must run inside the transaction that creates or deletes the rows. One
    upsert per counter table whatever their number, and the feed row last, so
    the lock every writer shares is held only until commit.
    """
    assert connection.in_atomic_block, "counters change only inside the write transaction"
    totals, hourly = Counter(), Counter()
    for detection in detections:
        totals[detection.camera_id, detection.vehicle_type] += delta
        hourly[detection.camera_id, detection.vehicle_type, _db_hour(detection.detected_at)] += delta
    _upsert_increments(CameraTypeTotal, ["camera_id", "vehicle_type"], totals)
    _upsert_increments(HourlyCount, ["camera_id", "vehicle_type", "hour"], hourly)
    n = len(detections)
    last = _advance_feed(events=n, delta=delta * n)
    # The i-th change took seq last.seq - n + 1 + i; the count after it is what
    # the changes after it had not yet added.
    return [FeedPosition(seq=last.seq - n + 1 + i, count=last.count - delta * (n - 1 - i)) for i in range(n)]


def take_seqs(n: int) -> list[int]:
    """Seqs for `n` events that change no count (alerts), after every seq taken
    so far in this transaction; inside the write transaction, like count_changes."""
    assert connection.in_atomic_block, "seqs are taken only inside the write transaction"
    last = _advance_feed(events=n, delta=0)
    return list(range(last.seq - n + 1, last.seq + 1))


def _db_hour(detected_at: datetime):
    # Raw SQL takes the value as the ORM would store it (naive UTC on MySQL).
    field = HourlyCount._meta.get_field("hour")
    return field.get_db_prep_value(hour_of(detected_at), connection)


def _advance_feed(*, events: int, delta: int) -> FeedPosition:
    """Take `events` seqs and add `delta` to the count; the position after both."""
    updated = FeedState.objects.filter(pk=1).update(
        last_seq=F("last_seq") + events, detection_count=F("detection_count") + delta
    )
    if not updated:
        # The row is made by a migration; a flushed test database has lost it.
        FeedState.objects.get_or_create(pk=1)
        return _advance_feed(events=events, delta=delta)
    seq, count = FeedState.objects.filter(pk=1).values_list("last_seq", "detection_count").get()
    return FeedPosition(seq=seq, count=count)


def current_position() -> FeedPosition:
    row = FeedState.objects.filter(pk=1).values_list("last_seq", "detection_count").first()
    return FeedPosition(*row) if row else FeedPosition(0, 0)


def rebuild() -> FeedPosition:
    """Recompute every counter from the detections table (the last seq is kept)."""
    with transaction.atomic():
        FeedState.objects.select_for_update().get_or_create(pk=1)
        CameraTypeTotal.objects.all().delete()
        HourlyCount.objects.all().delete()
        totals = Detection.objects.values("camera_id", "vehicle_type").annotate(n=Count("id"))
        CameraTypeTotal.objects.bulk_create(
            CameraTypeTotal(camera_id=t["camera_id"], vehicle_type=t["vehicle_type"], count=t["n"]) for t in totals
        )
        hourly = (
            Detection.objects.annotate(hour=TruncHour("detected_at", tzinfo=UTC))
            .values("camera_id", "vehicle_type", "hour")
            .annotate(n=Count("id"))
        )
        HourlyCount.objects.bulk_create(
            (
                HourlyCount(camera_id=h["camera_id"], vehicle_type=h["vehicle_type"], hour=h["hour"], count=h["n"])
                for h in hourly.iterator()
            ),
            batch_size=1000,
        )
        FeedState.objects.filter(pk=1).update(detection_count=Detection.objects.count())
    return current_position()
