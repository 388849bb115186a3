"""The visit engine (`detections.sites.engine`): visits follow the reads
whatever order they arrive in, a late read derives its stretch again (and its
look-alikes'), a step that fails leaves nothing, a site edit derives history
with no events; on real MariaDB."""

import json
import random
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.db import DatabaseError

from detections.core.writes import detection_create
from detections.models import Camera, Event, EventKind, FollowerCursor, Visit
from detections.sites import edits, engine, seen

pytestmark = pytest.mark.django_db(transaction=True)

# Recent: open visits are still open (absent_after_seconds is a day).
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=12)
_tracks = count(1)


def camera(name):
    return Camera.objects.get_or_create(name=name)[0]


def make_site(name="Depot A", roles=None, **fields):
    roles = roles or {"in-1": "entry", "out-1": "exit"}
    fields.setdefault("since", T0 - timedelta(days=1))
    site = edits.site_create(
        name=name, cameras=[edits.CameraRole(camera(c), role) for c, role in roles.items()], **fields
    )
    engine.derive_pending()
    return site


def read(plate, camera_name, minutes, *, direction=""):
    return detection_create(
        camera=camera(camera_name),
        tracking_id=f"trk-{next(_tracks)}",
        vehicle_type="car",
        detected_at=T0 + timedelta(minutes=minutes),
        plate=plate,
        direction=direction,
    ).detection


def run_engine():
    while engine.step():
        pass


def visits(site):
    return [
        (v.plate, v.state, _m(v.entered_at), _m(v.exited_at))
        for v in Visit.objects.filter(site=site).order_by("anchor_at", "plate", "id")
    ]


def _m(moment):
    return None if moment is None else (moment - T0).total_seconds() / 60


def visit_events():
    return [(e.payload["event"], e.payload["visit"]["state"]) for e in Event.objects.filter(kind=EventKind.VISIT)]


def test_reads_in_order_make_visits_and_their_events():
    site = make_site()
    read("34ABC123", "in-1", 0)
    run_engine()
    assert visits(site) == [("34ABC123", "open", 0, None)]
    read("34ABC123", "out-1", 90)
    run_engine()
    assert visits(site) == [("34ABC123", "closed", 0, 90)]
    assert visit_events() == [("opened", "open"), ("closed", "closed")]
    closed = Event.objects.filter(kind=EventKind.VISIT).last().payload
    assert closed["visit"]["duration_seconds"] == 5400 and closed["occupancy"] == 0


def test_a_late_read_derives_the_stretch_again_and_the_visit_keeps_its_id():
    site = make_site()
    read("34ABC123", "in-1", 0)
    read("34ABC123", "out-1", 90)
    run_engine()
    visit_id = Visit.objects.get(site=site).pk
    # An exit at 30 minutes, posted late: it closes the visit; the one at 90 is then an exit alone.
    read("34ABC123", "out-1", 30)
    run_engine()
    assert visits(site) == [("34ABC123", "closed", 0, 30), ("34ABC123", "entry_missed", None, 90)]
    assert Visit.objects.get(site=site, exited_at=T0 + timedelta(minutes=30)).pk == visit_id
    assert visit_events()[-2:] == [("changed", "closed"), ("closed", "entry_missed")]


def test_a_late_read_of_a_look_alike_plate_derives_its_neighbours_again():
    site = make_site()
    read("34ABC123", "in-1", 0)
    read("34ABC128", "out-1", 60)  # a misread exit: closes 34ABC123's visit (rule 5)
    run_engine()
    assert visits(site) == [("34ABC123", "closed", 0, 60)]
    # A late entry of 34ABC129: now two open visits are within one edit of the exit, so it goes to none.
    read("34ABC129", "in-1", 10)
    run_engine()
    assert visits(site) == [
        ("34ABC123", "open", 0, None),
        ("34ABC129", "open", 10, None),
        ("34ABC128", "entry_missed", None, 60),
    ]


def test_look_alikes_read_while_another_engine_took_the_steps_are_found(monkeypatch):
    site = make_site()
    read("34ABC123", "in-1", 0)
    run_engine()
    mine = engine.BOOK  # this process's plates: up to here
    monkeypatch.setattr(engine, "BOOK", seen.PlateBook())  # another process takes the next step
    read("34ABC129", "in-1", 10)
    run_engine()
    monkeypatch.setattr(engine, "BOOK", mine)  # behind the log now: it catches up from the events
    read("34ABC128", "out-1", 60)  # within one edit of both open visits: it goes to neither (rule 5)
    run_engine()
    assert visits(site) == [
        ("34ABC123", "open", 0, None),
        ("34ABC129", "open", 10, None),
        ("34ABC128", "entry_missed", None, 60),
    ]


def test_the_same_reads_posted_in_different_orders_give_the_same_visits():
    rng = random.Random(5)
    plates = ["34ABC123", "34ABC128", "06XYZ77", "35KLM900", "34ABC129"]
    day = [(rng.choice(plates), rng.choice(["in", "out"]), rng.randrange(0, 600)) for _ in range(120)]
    found = []
    for n in range(3):
        site = make_site(f"site-{n}", {f"in-{n}": "entry", f"out-{n}": "exit"})
        order = day[:]
        rng.shuffle(order)
        for index, (plate, way, minute) in enumerate(order):
            read(plate, f"{way}-{n}", minute)
            if index % 7 == 0:
                run_engine()
        run_engine()
        found.append(visits(site))
    assert found[0] == found[1] == found[2] and len(found[0]) > 20


def test_a_step_that_fails_leaves_no_visit_and_no_moved_cursor_and_the_next_step_does_the_work(monkeypatch):
    site = make_site()
    run_engine()
    position = FollowerCursor.objects.get(name="visits").position
    read("34ABC123", "in-1", 0)
    real = engine.log_event_batches

    def fail_after_writing(*args, **kwargs):
        real(*args, **kwargs)
        raise DatabaseError("the engine died here")

    monkeypatch.setattr(engine, "log_event_batches", fail_after_writing)
    with pytest.raises(DatabaseError):
        engine.step()
    assert not Visit.objects.exists() and not Event.objects.filter(kind=EventKind.VISIT).exists()
    assert FollowerCursor.objects.get(name="visits").position == position
    monkeypatch.setattr(engine, "log_event_batches", real)
    run_engine()
    assert visits(site) == [("34ABC123", "open", 0, None)] and visit_events() == [("opened", "open")]


def test_a_site_edit_derives_its_history_again_with_no_events():
    site = make_site()
    read("34ABC123", "in-1", 0)
    read("34ABC123", "in-2", 30)
    read("34ABC123", "out-1", 60)
    run_engine()
    assert visits(site) == [("34ABC123", "closed", 0, 60)]
    logged = Event.objects.count()
    edits.site_update(
        site,
        cameras=[edits.CameraRole(camera("in-2"), "entry"), edits.CameraRole(camera("out-1"), "exit")],
    )
    assert engine.derive_pending() is True and engine.derive_pending() is False
    assert visits(site) == [("34ABC123", "closed", 30, 60)]
    assert Event.objects.count() == logged


def test_a_new_site_derives_the_reads_from_its_since_without_events():
    read("34ABC123", "in-1", 0)
    read("34ABC123", "out-1", 60)
    read("06XYZ77", "in-1", 70)
    site = make_site(since=T0 + timedelta(minutes=65))
    assert visits(site) == [("06XYZ77", "open", 70, None)]
    assert not Event.objects.filter(kind=EventKind.VISIT).exists()


def test_reads_that_arrive_while_a_site_is_derived_are_not_lost(monkeypatch):
    site = make_site()
    read("34ABC123", "in-1", 0)
    run_engine()
    edits.site_update(site, repeat_seconds=30)
    real_walk = engine.walk.walk

    def read_arrives_meanwhile(*args, **kwargs):
        monkeypatch.setattr(engine.walk, "walk", real_walk)  # once
        result = real_walk(*args, **kwargs)
        read("34ABC123", "out-1", 45)
        run_engine()  # the engine steps past it while the site is being derived
        return result

    monkeypatch.setattr(engine.walk, "walk", read_arrives_meanwhile)
    engine.derive_pending()
    assert visits(site) == [("34ABC123", "closed", 0, 45)]


def test_deleting_a_read_derives_its_visit_again():
    from detections.core.writes import detection_delete

    site = make_site()
    read("34ABC123", "in-1", 0)
    leave = read("34ABC123", "out-1", 60)
    run_engine()
    detection_delete(detection=leave)
    run_engine()
    assert visits(site) == [("34ABC123", "open", 0, None)]


def test_the_events_of_a_step_reach_the_channel_layer_in_one_message(feed_listener):
    make_site()
    read("34ABC123", "in-1", 0)
    read("06XYZ77", "in-1", 1)
    assert [feed_listener.receive()["type"] for _ in range(2)] == ["new_detection", "new_detection"]
    run_engine()
    first = feed_listener.receive()
    assert (first["type"], first["event"], first["visit"]["plate"]) == ("visit", "opened", "34ABC123")
    # The other visit's event came in the same channel-layer message, not a round trip of its own.
    assert [json.loads(event["text"])["visit"]["plate"] for event in feed_listener.pending] == ["06XYZ77"]
    assert feed_listener.receive()["visit"]["plate"] == "06XYZ77"
    feed_listener.assert_nothing_else()
