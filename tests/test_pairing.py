"""The pairing rule (protocol.md, "Routes and journeys") case by case, as a
pure function of the reads: double reads at each end, repeats, misreads within
one edit of a single other vehicle, two candidates, the window, and order
independence over every permutation of the reads."""

import itertools
import random
from datetime import UTC, datetime, timedelta

from detections.journeys.pairing import Read, Rule, State, pair, speed_kmh
from detections.journeys.transitions import Transition, derive

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
RULE = Rule(max_seconds=1800, repeat_seconds=60)
_ids = itertools.count(1)
START, END = 1, 2  # camera ids


def read(vehicle: str, seconds: float, camera: int = START, tracking_id: str = "") -> Read:
    pk = next(_ids)
    return Read(pk, vehicle, T0 + timedelta(seconds=seconds), tracking_id or f"t{pk}", camera, vehicle)


def start(vehicle, seconds, **kw):
    return read(vehicle, seconds, START, **kw)


def end(vehicle, seconds, **kw):
    return read(vehicle, seconds, END, **kw)


def pairs_of(starts, ends, rule=RULE, state=None) -> list[tuple[int, int, bool]]:
    return [(p.start.detection_id, p.end.detection_id, p.fuzzy) for p in pair(starts, ends, rule, state)]


def test_an_end_read_takes_the_latest_start_read_of_its_vehicle_before_it():
    early, late = start("34A8C123", 0), start("34A8C123", 100)
    finish = end("34A8C123", 400)
    assert pairs_of([early, late], [finish]) == [(late.detection_id, finish.detection_id, False)]


def test_a_double_read_at_the_start_gives_one_journey_from_the_later_read():
    first, second = start("34A8C123", 0), start("34A8C123", 2)
    finish = end("34A8C123", 300)
    assert pairs_of([first, second], [finish]) == [(second.detection_id, finish.detection_id, False)]


def test_a_double_read_at_the_end_is_a_repeat_and_pairs_with_nothing():
    first, second = start("34A8C123", 0), start("34A8C123", 2)
    finish, again = end("34A8C123", 300), end("34A8C123", 330)
    # The repeat does not take the earlier start read left over.
    assert pairs_of([first, second], [finish, again]) == [(second.detection_id, finish.detection_id, False)]


def test_a_repeat_is_measured_from_the_previous_end_read_even_when_that_one_was_a_repeat():
    s1, s2, s3 = (start("34A8C123", t) for t in (0, 10, 20))
    e1, e2, e3 = end("34A8C123", 300), end("34A8C123", 350), end("34A8C123", 400)
    assert pairs_of([s1, s2, s3], [e1, e2, e3]) == [(s3.detection_id, e1.detection_id, False)]


def test_an_end_read_past_the_repeat_takes_the_latest_start_no_earlier_end_took():
    s1, s2 = start("34A8C123", 0), start("34A8C123", 10)
    e1, e2 = end("34A8C123", 300), end("34A8C123", 400)
    assert pairs_of([s1, s2], [e1, e2]) == [
        (s2.detection_id, e1.detection_id, False),
        (s1.detection_id, e2.detection_id, False),
    ]


def test_a_start_read_more_than_max_seconds_before_pairs_with_nothing_and_exactly_max_seconds_does():
    old, finish = start("34A8C123", 0), end("34A8C123", 1800.000001)
    assert pairs_of([old], [finish]) == []
    edge, finish = start("34A8C123", 0), end("34A8C123", 1800)
    assert pairs_of([edge], [finish]) == [(edge.detection_id, finish.detection_id, False)]


def test_a_start_read_at_the_same_time_as_the_end_read_is_not_before_it():
    assert pairs_of([start("34A8C123", 10)], [end("34A8C123", 10)]) == []


def test_a_misread_end_takes_the_start_of_the_single_other_vehicle_within_one_edit():
    s = start("34A8C123", 0)
    misread = end("34A8C124", 300)
    assert pairs_of([s], [misread]) == [(s.detection_id, misread.detection_id, True)]


def test_a_misread_end_with_two_candidate_vehicles_pairs_with_nothing():
    a, b = start("34A8C123", 0), start("34A8C125", 5)
    misread = end("34A8C124", 300)
    assert pairs_of([a, b], [misread]) == []


def test_a_candidate_whose_start_reads_are_all_taken_does_not_count_as_one():
    a, b = start("34A8C123", 0), start("34A8C125", 5)
    b_end, misread = end("34A8C125", 200), end("34A8C124", 300)
    assert pairs_of([a, b], [b_end, misread]) == [
        (b.detection_id, b_end.detection_id, False),
        (a.detection_id, misread.detection_id, True),
    ]


def test_an_end_read_with_its_own_start_never_looks_at_other_vehicles():
    own, other = start("34A8C124", 0), start("34A8C123", 100)
    finish = end("34A8C124", 300)
    assert pairs_of([own, other], [finish]) == [(own.detection_id, finish.detection_id, False)]


def test_two_edits_away_is_not_a_misread():
    assert pairs_of([start("34A8C123", 0)], [end("34A8C199", 300)]) == []


def test_a_misread_end_takes_the_start_its_vehicle_would_have_taken_and_the_vehicle_then_goes_without():
    s = start("34A8C123", 0)
    misread, real = end("34A8C124", 300), end("34A8C123", 400)
    assert pairs_of([s], [misread, real]) == [(s.detection_id, misread.detection_id, True)]


def test_ties_in_time_are_broken_by_tracking_id_at_the_end():
    s1, s2 = start("34A8C123", 0), start("34A8C123", 10)
    e_b = end("34A8C123", 300, tracking_id="b")
    e_a = end("34A8C123", 300, tracking_id="a")
    # "a" comes first and takes the latest; "b" is a repeat of it.
    assert pairs_of([s1, s2], [e_b, e_a]) == [(s2.detection_id, e_a.detection_id, False)]


def test_the_state_left_by_earlier_end_reads_is_honoured():
    s1, s2 = start("34A8C123", 0), start("34A8C123", 10)
    finish = end("34A8C123", 400)
    state = State(taken={s2.detection_id}, last_end={})
    assert pairs_of([s1, s2], [finish], state=state) == [(s1.detection_id, finish.detection_id, False)]
    state = State(taken=set(), last_end={"34A8C123": T0 + timedelta(seconds=390)})
    assert pairs_of([s1, s2], [finish], state=state) == []


def test_the_speed_is_the_distance_over_the_time():
    assert speed_kmh(2400, 108) == 80
    assert speed_kmh(None, 108) is None


SCENE_VEHICLES = ["34A8C123", "34A8C124", "34A8C125", "06XY277"]


def scene(rng: random.Random, n: int) -> tuple[list[Read], list[Read]]:
    starts, ends = [], []
    for _ in range(n):
        vehicle = rng.choice(SCENE_VEHICLES)
        t = rng.randrange(0, 3000, 5)
        (starts if rng.random() < 0.5 else ends).append(read(vehicle, t, START if rng.random() < 0.5 else END))
    starts = [r for r in starts + ends if r.camera_id == START]
    ends = [r for r in ends + starts if r.camera_id == END]
    return starts, ends


def test_journeys_depend_only_on_the_reads_not_on_the_order_they_arrived_in():
    rng = random.Random(22)
    for _ in range(30):
        starts, ends = scene(rng, 7)
        expected = pairs_of(starts, ends)
        for order in itertools.permutations(starts + ends):
            shuffled_starts = [r for r in order if r.camera_id == START]
            shuffled_ends = [r for r in order if r.camera_id == END]
            assert pairs_of(shuffled_starts, shuffled_ends) == expected


def test_transitions_drop_a_read_within_60_s_of_the_vehicles_previous_read_at_the_same_camera():
    a1, b, a2, a3 = read("V", 0, 1), read("V", 10, 2), read("V", 50, 1), read("V", 100, 1)
    found = derive([a3, a2, b, a1])
    assert found[a1.detection_id] == Transition(repeat=False)
    assert found[b.detection_id] == Transition(repeat=False, from_camera_id=1, gap_seconds=10)
    assert found[a2.detection_id] == Transition(repeat=True)
    # Measured from the previous read at the camera, a repeat or not: a queue stays one passage.
    assert found[a3.detection_id] == Transition(repeat=True)


def test_a_transition_starts_from_the_previous_read_that_is_not_a_repeat():
    a1, a2, b = read("V", 0, 1), read("V", 30, 1), read("V", 90, 2)
    assert derive([a1, a2, b])[b.detection_id] == Transition(repeat=False, from_camera_id=1, gap_seconds=90)
