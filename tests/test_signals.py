"""Every creation and deletion, from any path, is counted, numbered, written to
the event log and published after commit; a rollback leaves no trace."""

import logging
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from conftest import MOMENT, store_detection, stored_files
from django.db import transaction
from helpers import counter_state

from detections.core import counters
from detections.core.writes import detection_delete
from detections.feed.publisher import publisher
from detections.models import Camera, Detection, Event


class RolledBack(Exception):
    """Raised inside a transaction to roll it back."""


# --- Rollbacks -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_detection_saved_in_a_transaction_that_rolls_back_publishes_nothing_and_counts_nothing(
    django_capture_on_commit_callbacks, feed_listener
):
    events_before, counters_before = Event.objects.count(), counter_state()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RolledBack), transaction.atomic():
            camera, _ = Camera.objects.get_or_create(name="gate-1")
            Detection.objects.create(camera=camera, tracking_id="t", vehicle_type="car", detected_at=MOMENT)
            raise RolledBack

    assert callbacks == []
    assert Detection.objects.count() == 0
    assert Event.objects.count() == events_before
    assert counter_state() == counters_before
    feed_listener.assert_nothing_else()


@pytest.mark.django_db
def test_ingest_refuses_to_run_inside_a_callers_transaction_and_leaves_no_file(_media_root):
    # The caller could roll back after ingest kept the files; ingest commits itself.
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        store_detection()

    assert stored_files(_media_root) == []


@pytest.mark.django_db
def test_a_deletion_rolled_back_keeps_the_row_its_files_and_the_counters(
    django_capture_on_commit_callbacks, feed_listener, _media_root
):
    detection = store_detection()
    detection_id, files, counters_before = detection.pk, stored_files(_media_root), counter_state()
    assert len(files) == 2

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RolledBack), transaction.atomic():
            detection.delete()
            raise RolledBack

    assert callbacks == []
    assert Detection.objects.filter(pk=detection_id).exists()
    assert stored_files(_media_root) == files
    assert counter_state() == counters_before
    assert not Event.objects.filter(kind="deletion").exists()
    feed_listener.assert_nothing_else()


# --- Paths that bypass the ingest module ---------------------------------------------------


def create_through_manager(camera):
    return Detection.objects.create(camera=camera, tracking_id="shell-1", vehicle_type="van", detected_at=MOMENT)


def create_through_save(camera):
    detection = Detection(camera=camera, tracking_id="shell-1", vehicle_type="van", detected_at=MOMENT)
    detection.save()
    return detection


@pytest.mark.parametrize("create", [create_through_manager, create_through_save], ids=["objects.create", "save"])
def test_a_detection_created_through_the_orm_gets_an_event_and_a_published_message(
    transactional_db, feed_listener, create
):
    before = counters.current_position()

    detection = create(Camera.objects.create(name="shell-cam"))

    message = feed_listener.receive()
    assert message["type"] == "new_detection"
    assert message["id"] == detection.pk
    assert message["tracking_id"] == "shell-1"
    assert message["vehicle_type"] == "van"
    assert message["camera"] == "shell-cam"
    assert message["seq"] == before.seq + 1
    assert message["count"] == before.count + 1 == Detection.objects.count()
    assert message["image"] is None
    event = Event.objects.get(seq=message["seq"])
    assert (event.kind, event.detection_id) == ("new_detection", detection.pk)


# --- Numbering and counting ----------------------------------------------------------------


@pytest.fixture
def mixed_history(transactional_db, feed_listener):
    """Creations and deletions through every path, one at a time.

    Returns the position before, and each published message with the number of
    detections stored right after it.
    """
    start = counters.current_position()
    late = MOMENT + timedelta(hours=2)
    camera = Camera.objects.create(name="yard")
    steps = [
        lambda: store_detection("trk-1"),
        lambda: store_detection("trk-2", camera="yard", vehicle_type="truck"),
        lambda: detection_delete(detection=Detection.objects.get(tracking_id="trk-1")),
        lambda: Detection.objects.create(camera=camera, tracking_id="trk-3", vehicle_type="bus", detected_at=late),
        lambda: store_detection("trk-4", detected_at=late),
        lambda: Detection.objects.get(tracking_id="trk-3").delete(),
        lambda: Detection.objects.filter(tracking_id="trk-2").delete(),
    ]
    history = []
    for step in steps:
        step()
        history.append((feed_listener.receive(), Detection.objects.count()))
    feed_listener.assert_nothing_else()
    return start, history


def test_seq_is_one_sequence_across_creations_and_deletions(mixed_history):
    start, history = mixed_history
    messages = [message for message, _ in history]

    assert [m["type"] for m in messages] == [
        "new_detection",
        "new_detection",
        "deletion",
        "new_detection",
        "new_detection",
        "deletion",
        "deletion",
    ]
    assert [m["seq"] for m in messages] == list(range(start.seq + 1, start.seq + 1 + len(messages)))
    assert list(Event.objects.filter(seq__gt=start.seq).values_list("seq", "kind")) == [
        (m["seq"], m["type"]) for m in messages
    ]
    assert counters.current_position().seq == messages[-1]["seq"]


def test_count_in_each_event_equals_the_number_of_detections_after_it(mixed_history):
    _, history = mixed_history

    assert [message["count"] for message, _ in history] == [rows for _, rows in history]
    assert [rows for _, rows in history] == [1, 2, 1, 2, 3, 2, 1]
    assert counters.current_position().count == Detection.objects.count()


# --- A channel layer that fails ---------------------------------------------------------------


def test_a_failed_publish_does_not_raise_from_ingest_is_counted_and_keeps_the_detection_and_event(
    transactional_db, feed_listener, monkeypatch, caplog
):
    async def refuse(group, message):
        raise ConnectionError("channel layer is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", refuse)
    failures = publisher.failed

    with caplog.at_level(logging.WARNING, logger="detections.feed.publisher"):
        detection = store_detection()

    assert publisher.failed == failures + 1
    assert Detection.objects.filter(pk=detection.pk).exists()
    event = Event.objects.get(kind="new_detection", detection_id=detection.pk)
    assert f"could not publish event {event.seq} (ConnectionError: channel layer is down)" in caplog.text
    monkeypatch.undo()  # the layer works again: nothing of the failed publish is on its way
    feed_listener.assert_nothing_else()
