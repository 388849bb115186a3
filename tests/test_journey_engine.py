"""The journey engine (detections/journeys/engine.py), a follower of the event
log on the real database: journeys stored as reads arrive, a late, deleted or
corrected read deriving again what it changes (with `removed` events), route
edits derived again without events, purges changing nothing, and the result
equal to the contract's rule over the final reads whatever the arrival order."""

import random

import pytest
from journey_helpers import (
    T0,
    at,
    bridge,
    brute_force_journeys,
    brute_force_transitions,
    delete,
    journey_events,
    journeys,
    read,
    reads_as_pairing_sees_them,
    started,
    stored_transitions,
)

from detections.core import counters
from detections.journeys import engine, queries, transitions
from detections.models import Camera, Event, EventKind, Journey, PlateRead, Route
from detections.operations import retention

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_start_and_an_end_read_make_a_journey_with_its_time_and_speed_and_a_completed_event():
    route = bridge()
    started()
    s = read("34 ABC 123", "bridge-s", 0)
    e = read("34ABC123", "bridge-n", 120)
    engine.catch_up()
    journey = Journey.objects.get()
    assert (journey.from_detection, journey.to_detection, journey.fuzzy) == (s.pk, e.pk, False)
    assert journey.seconds == 120 and journey.speed_kmh == pytest.approx(72.0)
    assert journey.speeding is False and journey.route == route
    assert journey_events() == [("completed", s.pk, e.pk)]
    payload = Event.objects.get(kind=EventKind.JOURNEY).payload
    assert payload["journey"]["plate"] == "34ABC123" and payload["camera"] == "bridge-n"
    assert payload["journey"]["started_at"] == "2026-11-24T08:00:00.000000Z"


def test_a_journey_above_the_limit_raises_speeding_too_and_only_once():
    bridge()
    started()
    s, e = read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 60)  # 144 km/h
    engine.catch_up()
    engine.catch_up()
    assert journey_events() == [("completed", s.pk, e.pk), ("speeding", s.pk, e.pk)]
    assert Journey.objects.get().speeding is True


def test_a_misread_pairing_is_never_speeding():
    bridge()
    started()
    s, e = read("34ABC123", "bridge-s", 0), read("34ABC124", "bridge-n", 60)
    engine.catch_up()
    assert journeys() == [(s.pk, e.pk, True)]
    assert journey_events() == [("completed", s.pk, e.pk)]


def test_a_late_start_read_makes_the_journey_when_it_arrives():
    bridge()
    started()
    e = read("34ABC123", "bridge-n", 300)
    engine.catch_up()
    assert journeys() == []
    s = read("34ABC123", "bridge-s", 0)
    engine.catch_up()
    assert journeys() == [(s.pk, e.pk, False)]


def test_a_late_read_that_changes_a_pairing_removes_the_journey_and_makes_the_new_one():
    bridge()
    started()
    early = read("34ABC123", "bridge-s", 0)
    e = read("34ABC123", "bridge-n", 300)
    engine.catch_up()
    old_id = Journey.objects.get().pk
    later = read("34ABC123", "bridge-s", 100)  # late: the latest start before the end now
    engine.catch_up()
    assert journeys() == [(later.pk, e.pk, False)]
    assert Journey.objects.get().pk != old_id
    assert journey_events() == [
        ("completed", early.pk, e.pk),
        ("removed", early.pk, e.pk),
        ("completed", later.pk, e.pk),
    ]


def test_a_late_start_read_between_an_end_read_and_its_repeat_pairs_with_nothing():
    bridge(repeat_seconds=60)
    started()
    read("34ABC123", "bridge-n", 100)
    read("34ABC123", "bridge-n", 130)  # a repeat of the end read before it
    engine.catch_up()
    read("34ABC123", "bridge-s", 115)  # late, and after the first end read
    engine.catch_up()
    assert journeys() == [] and journey_events() == []


def test_a_late_second_candidate_undoes_a_misread_pairing():
    bridge()
    started()
    a = read("34ABC123", "bridge-s", 0)
    e = read("34ABC124", "bridge-n", 300)
    engine.catch_up()
    assert journeys() == [(a.pk, e.pk, True)]
    read("34ABC125", "bridge-s", 10)  # a second vehicle within one edit: none is taken
    engine.catch_up()
    assert journeys() == []
    assert journey_events()[-1] == ("removed", a.pk, e.pk)


def test_deleting_a_read_removes_its_journey_and_frees_the_start_for_the_next_end_read():
    bridge(repeat_seconds=60)
    started()
    s1, s2 = read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-s", 10)
    e1, e2 = read("34ABC123", "bridge-n", 300), read("34ABC123", "bridge-n", 400)
    engine.catch_up()
    assert journeys() == [(s2.pk, e1.pk, False), (s1.pk, e2.pk, False)]
    delete(e1)
    engine.catch_up()
    assert journeys() == [(s2.pk, e2.pk, False)]
    assert journey_events()[-3:] == [("removed", s2.pk, e1.pk), ("removed", s1.pk, e2.pk), ("completed", s2.pk, e2.pk)]
    assert not PlateRead.objects.filter(pk=e1.pk).exists()


def test_a_purge_of_old_detections_derives_nothing_again():
    bridge()
    started()
    s, e = read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 120)
    engine.catch_up()
    before = list(Event.objects.filter(kind=EventKind.JOURNEY).values_list("seq", flat=True))
    retention.purge_detections(at(1000))
    engine.catch_up()
    assert journeys() == [(s.pk, e.pk, False)]
    assert list(Event.objects.filter(kind=EventKind.JOURNEY).values_list("seq", flat=True)) == before


def test_a_route_edit_derives_its_history_again_without_events():
    route = bridge(max_seconds=1800)
    started()
    s, e = read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 1000)
    engine.catch_up()
    events_before = journey_events()
    route.max_seconds = 600
    route.save()
    engine.catch_up()
    assert journeys() == [] and journey_events() == events_before
    route.refresh_from_db()
    assert route.derived_revision == route.revision
    route.max_seconds = 1800
    route.save()
    engine.catch_up()
    assert journeys() == [(s.pk, e.pk, False)] and journey_events() == events_before


def test_a_route_made_with_a_past_since_derives_the_history_without_events():
    s, e = read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 100)
    started()  # the engine takes the reads stored before it ran
    bridge()
    engine.catch_up()
    assert journeys() == [(s.pk, e.pk, False)] and journey_events() == []


def test_an_inactive_route_pairs_nothing_new():
    route = bridge(active=False)
    started()
    read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 100)
    engine.catch_up()
    assert journeys(route) == []


def test_a_corrected_plate_moves_the_read_to_its_new_vehicle():
    bridge()
    started()
    s = read("34ABC123", "bridge-s", 0)
    e = read("06XY277", "bridge-n", 120)
    engine.catch_up()
    assert journeys() == []
    # The correction's event, as the project logs it (PATCH /api/detections/{id}/).
    (seq,) = _take_seqs(1)
    Event.objects.create(
        seq=seq,
        kind=EventKind.DETECTION_UPDATED,
        detection_id=e.pk,
        camera="bridge-n",
        vehicle_type="car",
        payload={
            "type": "detection_updated",
            "seq": seq,
            "id": e.pk,
            "camera": "bridge-n",
            "plate": "34ABC123",
            "previous_plate": "06XY277",
        },
    )
    engine.catch_up()
    assert journeys() == [(s.pk, e.pk, False)]
    assert PlateRead.objects.get(pk=e.pk).vehicle == "34A8C123"


def _take_seqs(n):
    from django.db import transaction

    with transaction.atomic():
        return counters.take_seqs(n)


CAMERAS = ["bridge-s", "bridge-n", "tunnel"]
PLATES = ["34ABC123", "34ABC124", "34ABC125", "06XY277", "06XY278"]


@pytest.mark.parametrize("seed", range(6))
def test_whatever_the_arrival_order_and_the_deletions_the_result_is_the_rule_over_the_final_reads(seed):
    rng = random.Random(seed)
    route = bridge(max_seconds=900, repeat_seconds=60)
    back = bridge(name="Bridge southbound", max_seconds=600, speed_limit_kmh=None)
    Route.objects.filter(pk=back.pk).update(
        from_camera=Camera.objects.get(name="bridge-n"), to_camera=Camera.objects.get(name="bridge-s")
    )
    started()
    planned = []
    for _ in range(50):
        plate, camera, seconds = rng.choice(PLATES), rng.choice(CAMERAS), rng.randrange(0, 3000, 7)
        planned.append((plate, camera, seconds))
        if rng.random() < 0.3:  # a double read, or a queue under the camera
            planned.append((plate, camera, seconds + rng.randrange(1, 150)))
    rng.shuffle(planned)  # arrival order: anything
    stored = []
    for n, (plate, camera, seconds) in enumerate(planned):
        stored.append(read(plate, camera, seconds, tracking_id=f"t{n}"))
        if rng.random() < 0.1 and stored:
            delete(stored.pop(rng.randrange(len(stored))))
        if rng.random() < 0.3:
            engine.catch_up(page=rng.choice([1, 3, 50]))
    engine.catch_up()
    reads = reads_as_pairing_sees_them()
    assert sorted(r.detection_id for r in reads) == sorted(d.pk for d in stored)
    for each in Route.objects.all():
        assert sorted(journeys(each), key=lambda t: t[1]) == brute_force_journeys(each, reads)
    assert stored_transitions() == brute_force_transitions(reads)
    ids = list(Camera.objects.filter(name__in=CAMERAS).values_list("pk", flat=True))
    for max_seconds in (60, 600, 3600):
        assert queries.od_matrix(ids, at(-10), at(5000), max_seconds) == transitions.count_matrix(
            reads, brute_force_transitions(reads), ids, at(-10), at(5000), max_seconds
        )
    # Every journey event adds up: what was completed and not removed is what is stored.
    alive = set()
    for name, start, end in journey_events():
        if name == "completed":
            alive.add((start, end))
        elif name == "removed":
            alive.remove((start, end))
    assert alive == {(s, e) for s, e, _ in journeys()}
    assert route.pk and T0


def test_journeys_and_reads_older_than_their_retention_are_purged_and_nothing_is_derived_again(settings):
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    settings.JOURNEY_RETENTION_DAYS = 10
    bridge()
    started()
    old = (read("34ABC123", "bridge-s", 0), read("34ABC123", "bridge-n", 100))
    engine.catch_up()
    now = timezone.now()
    recent = (
        read("06XY277", "bridge-s", (now - T0).total_seconds() - 200),
        read("06XY277", "bridge-n", (now - T0).total_seconds() - 100),
    )
    engine.catch_up()
    events_before = journey_events()
    out = StringIO()
    call_command("purge_detections", "--dry-run", stdout=out)
    assert "would delete 1 journey(s) and 2 plate read(s)" in out.getvalue()
    assert retention.purge_journeys(now) == (1, 2)
    engine.catch_up()
    assert journeys() == [(recent[0].pk, recent[1].pk, False)]
    assert sorted(PlateRead.objects.values_list("pk", flat=True)) == sorted(d.pk for d in recent)
    assert journey_events() == events_before and old
