"""Retention: `purge_detections` deletes what is older than the retention period
in batches, with its files, keeping every counter exact and telling every
client; a dry run changes nothing. `find_orphans` finds files without a row
(and removes them) and rows without their files."""

import io
import os
import time
from datetime import datetime, timedelta

import pytest
from conftest import image_bytes, stored_files
from django.core.management import call_command
from django.db.models.signals import post_delete
from django.utils import timezone
from helpers import assert_counters_match_the_table

from detections.core import counters, images
from detections.core.writes import detection_create
from detections.feed import signals
from detections.models import Camera, CameraTypeTotal, Detection, Event, HourlyCount
from detections.operations import retention

pytestmark = pytest.mark.django_db


def store(tracking_id, *, age: timedelta, camera="gate-1", vehicle_type="car", with_image=True) -> Detection:
    return detection_create(
        camera=Camera.objects.get_or_create(name=camera)[0],
        tracking_id=tracking_id,
        vehicle_type=vehicle_type,
        detected_at=timezone.now() - age,
        image=images.verify(image_bytes()) if with_image else None,
    ).detection


def purge(*args) -> str:
    out = io.StringIO()
    call_command("purge_detections", *args, stdout=out, stderr=out)
    return out.getvalue()


def find_orphans(*args) -> str:
    out = io.StringIO()
    call_command("find_orphans", *args, stdout=out)
    return out.getvalue()


def files_of(*detections) -> list[str]:
    return sorted(name for d in detections for name in (d.image.path, d.thumbnail.path) if name)


@pytest.fixture
def history():
    """Old and recent detections over two cameras and three types."""
    old = [
        store("old-1", age=timedelta(days=40)),
        store("old-2", age=timedelta(days=35, hours=3), vehicle_type="truck"),
        store("old-3", age=timedelta(days=31), camera="yard", vehicle_type="bus"),
        store("old-4", age=timedelta(days=31, minutes=5), camera="yard", with_image=False),
        store("old-5", age=timedelta(days=90), vehicle_type="truck"),
    ]
    recent = [
        store("new-1", age=timedelta(days=29)),
        store("new-2", age=timedelta(hours=1), camera="yard", vehicle_type="bus"),
        store("new-3", age=timedelta(minutes=1), vehicle_type="truck"),
    ]
    return old, recent


def state(media_root) -> dict:
    return {
        "detections": sorted(Detection.objects.values_list("pk", flat=True)),
        "files": stored_files(media_root),
        "position": counters.current_position(),
        "totals": sorted(CameraTypeTotal.objects.values_list("camera_id", "vehicle_type", "count")),
        "hourly": sorted(HourlyCount.objects.values_list("camera_id", "vehicle_type", "hour", "count")),
        "events": sorted(Event.objects.values_list("seq", flat=True)),
    }


# --- purge_detections ---------------------------------------------------------------------


def test_a_dry_run_changes_nothing_and_reports_what_it_would_delete(history, _media_root):
    before = state(_media_root)

    output = purge("--older-than", "30", "--dry-run")

    assert state(_media_root) == before
    assert "Dry run: would delete 5 detection(s)" in output
    assert "8 image file(s)" in output  # old-4 has no snapshot
    assert "Nothing was changed." in output


def test_a_purge_deletes_the_old_rows_and_their_files_and_keeps_the_recent_ones(
    history, _media_root, django_capture_on_commit_callbacks
):
    old, recent = history

    with django_capture_on_commit_callbacks(execute=True):
        output = purge("--older-than", "30")

    assert sorted(Detection.objects.values_list("pk", flat=True)) == sorted(d.pk for d in recent)
    assert [str(p) for p in stored_files(_media_root)] == files_of(*recent)
    assert "Deleted 5 detection(s) and 8 image file(s)" in output


def test_a_purge_keeps_every_counter_exact(history, django_capture_on_commit_callbacks):
    assert_counters_match_the_table()
    before = counters.current_position()

    with django_capture_on_commit_callbacks(execute=True):
        purge("--older-than", "30", "--batch-size", "2")

    assert_counters_match_the_table()
    assert counters.current_position().count == before.count - 5
    # The old hours' counters fell to zero and were dropped.
    assert not HourlyCount.objects.filter(count=0).exists()


def test_a_purge_publishes_one_deletion_per_row_to_every_client(
    history, feed_listener, django_capture_on_commit_callbacks
):
    old, _ = history
    before = counters.current_position()

    with django_capture_on_commit_callbacks(execute=True):
        purge("--older-than", "30", "--batch-size", "2")

    told = [feed_listener.receive() for _ in old]
    assert {m["type"] for m in told} == {"deletion"}
    assert sorted(m["deleted_id"] for m in told) == sorted(d.pk for d in old)
    assert [m["seq"] for m in told] == [before.seq + n for n in range(1, 6)]
    assert [m["count"] for m in told] == [before.count - n for n in range(1, 6)]
    feed_listener.assert_nothing_else()


def test_a_purge_deletes_oldest_first_and_shows_a_progress_bar_per_batch(history, django_capture_on_commit_callbacks):
    old, _ = history

    with django_capture_on_commit_callbacks(execute=True):
        output = purge("--older-than", "30", "--batch-size", "2")

    assert "Deleting 5 detection(s)" in output
    # Not a terminal: a line per tenth of the way, the last one full.
    assert "[" + "#" * 12 + "." * 18 + "] 2/5 (40%)" in output
    assert "[" + "#" * 24 + "." * 6 + "] 4/5 (80%)" in output
    assert "[" + "#" * 30 + "] 5/5 (100%)" in output
    deleted_order = list(Event.objects.filter(kind="deletion").order_by("seq").values_list("detection_id", flat=True))
    oldest_first = [d.pk for d in sorted(old, key=lambda d: d.detected_at)]
    batches = [set(deleted_order[i : i + 2]) for i in (0, 2, 4)]
    assert batches == [set(oldest_first[i : i + 2]) for i in (0, 2, 4)]


def test_without_older_than_the_purge_uses_retention_days(history, settings, django_capture_on_commit_callbacks):
    settings.RETENTION_DAYS = 36
    old, recent = history

    with django_capture_on_commit_callbacks(execute=True):
        purge()

    kept = {d.tracking_id for d in Detection.objects.all()}
    assert kept == {"old-3", "old-4", "old-2"} | {d.tracking_id for d in recent}


def test_with_retention_off_the_purge_deletes_nothing(history, settings, _media_root):
    settings.RETENTION_DAYS = 0
    before = state(_media_root)

    output = purge()

    assert "Retention is off" in output
    assert state(_media_root) == before


def test_each_batch_is_its_own_transaction(transactional_db, _media_root, feed_listener):
    rows = [store(f"old-{n}", age=timedelta(days=40, minutes=n)) for n in range(6, 0, -1)]  # oldest first
    fail_on = rows[4].pk  # in the third batch of two

    def failing_receiver(sender, instance, **kwargs):
        if instance.pk == fail_on:
            raise RuntimeError("the disk is on fire")
        signals.detection_deleted(sender, instance, **kwargs)

    post_delete.disconnect(sender=Detection, dispatch_uid="detection_deleted")
    post_delete.connect(failing_receiver, sender=Detection, dispatch_uid="detection_deleted")
    try:
        with pytest.raises(RuntimeError, match="the disk is on fire"):
            purge("--older-than", "30", "--batch-size", "2")
    finally:
        post_delete.disconnect(sender=Detection, dispatch_uid="detection_deleted")
        signals.connect()

    # The first two batches were committed: rows, files, counters, and the
    # clients were told; the third was rolled back whole.
    assert sorted(Detection.objects.values_list("pk", flat=True)) == sorted(d.pk for d in rows[4:])
    assert [str(p) for p in stored_files(_media_root)] == files_of(*rows[4:])
    assert_counters_match_the_table()
    told = [feed_listener.receive() for _ in range(len(rows) + 4)]
    assert [m["type"] for m in told] == ["new_detection"] * len(rows) + ["deletion"] * 4
    assert sorted(m["deleted_id"] for m in told[len(rows) :]) == sorted(d.pk for d in rows[:4])


# --- The event log --------------------------------------------------------------------------


def age_events(seqs, days: int):
    Event.objects.filter(seq__in=seqs).update(created_at=timezone.now() - timedelta(days=days))


def test_a_purge_prunes_the_event_log_before_the_cutoff_but_never_the_newest_event():
    for n in range(4):
        store(f"trk-{n}", age=timedelta(days=1))
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    age_events(seqs, days=60)  # every event is old, and nothing is left to purge

    output = purge("--older-than", "30")

    assert list(Event.objects.values_list("seq", flat=True)) == [seqs[-1]]
    assert "Pruned 3 event log row(s)" in output


def test_the_event_log_is_only_trimmed_at_its_start_so_resume_never_skips_an_event():
    for n in range(5):
        store(f"trk-{n}", age=timedelta(days=1))
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    age_events([seqs[0], seqs[1], seqs[3]], days=60)  # seqs[2] is recent: everything from it stays

    purge("--older-than", "30")

    assert list(Event.objects.order_by("seq").values_list("seq", flat=True)) == seqs[2:]


def test_a_dry_run_reports_the_event_log_rows_it_would_prune():
    for n in range(3):
        store(f"trk-{n}", age=timedelta(days=1))
    age_events(Event.objects.values_list("seq", flat=True), days=60)

    output = purge("--older-than", "30", "--dry-run")

    assert "2 event log row(s)" in output
    assert Event.objects.count() == 3


# --- find_orphans -----------------------------------------------------------------------------


def plant(media_root, name: str, *, age: timedelta) -> str:
    path = media_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes())
    moment = time.time() - age.total_seconds()
    os.utime(path, (moment, moment))
    return name


def test_find_orphans_lists_files_without_a_row_and_rows_without_their_files(_media_root):
    kept = store("trk-kept", age=timedelta(days=1))
    broken = store("trk-broken", age=timedelta(days=2))
    (_media_root / broken.image.name).unlink()
    day = kept.image.name.rsplit("/", 1)[0]
    orphans = [
        plant(_media_root, f"{day}/orphan.jpg", age=timedelta(days=1)),  # beside a live snapshot
        plant(_media_root, "thumbnails/2025/01/02/lost.jpg", age=timedelta(days=400)),
        plant(_media_root, "snapshots/elsewhere/stray.png", age=timedelta(hours=2)),  # not a day folder
    ]
    before = stored_files(_media_root)

    output = find_orphans()

    for name in orphans:
        assert f"orphan file: {name}" in output
    assert f"missing file: detection {broken.pk} image {broken.image.name}" in output
    assert [line for line in output.splitlines() if line.startswith("missing file:")] == [
        f"missing file: detection {broken.pk} image {broken.image.name}"
    ]
    assert "3 orphan file(s) found; 1 missing file(s) of stored detections." in output
    assert stored_files(_media_root) == before  # a report only


def test_rows_without_their_files_are_found_across_pages_whose_times_tie(_media_root):
    stored = [store(f"trk-{n}", age=timedelta(days=1)) for n in range(5)]
    Detection.objects.update(detected_at=stored[0].detected_at)  # only the id orders them
    for detection in stored[1::2]:
        (_media_root / detection.thumbnail.name).unlink()

    missing = list(retention.find_missing_files(page_size=2))

    assert missing == [(d.pk, "thumbnail", d.thumbnail.name) for d in stored[1::2]]


def test_find_orphans_with_delete_removes_the_orphans_and_nothing_else(_media_root):
    kept = store("trk-kept", age=timedelta(days=1))
    plant(_media_root, f"{kept.image.name.rsplit('/', 1)[0]}/orphan.jpg", age=timedelta(days=1))
    plant(_media_root, "thumbnails/2025/01/02/lost.jpg", age=timedelta(days=400))

    output = find_orphans("--delete")

    assert "2 orphan file(s) removed" in output
    assert [str(p) for p in stored_files(_media_root)] == files_of(kept)
    assert find_orphans().endswith("0 orphan file(s) found; 0 missing file(s) of stored detections.\n")


def test_find_orphans_leaves_a_file_younger_than_min_age_alone(_media_root):
    young = plant(_media_root, "snapshots/2026/11/24/just-written.jpg", age=timedelta(minutes=5))

    output = find_orphans("--delete", "--min-age", "60")

    assert (_media_root / young).exists()
    assert "0 orphan file(s) removed" in output
    assert "1 unmatched file(s) newer than 60 min left alone." in output


def test_find_orphans_matches_rows_whose_folder_date_differs_from_their_utc_date(_media_root):
    # A camera sent its local time with an offset: the file's folder is that
    # local date, the day after the UTC one.
    local = datetime(2026, 11, 24, 1, 30, tzinfo=timezone.get_fixed_timezone(180))
    detection = detection_create(
        camera=Camera.objects.create(name="gate-1"),
        tracking_id="trk-offset",
        vehicle_type="car",
        detected_at=local,
        image=images.verify(image_bytes()),
    ).detection
    assert detection.image.name.startswith("snapshots/2026/11/24/")

    output = find_orphans()

    assert "0 orphan file(s) found; 0 missing file(s)" in output
