"""The pairing rule (protocol.md, "Routes and journeys") case by case, as a
pure function of the reads: double reads at each end, repeats, misreads within
one edit of a single other vehicle, two candidates, the window, and order
independence over every permutation of the reads."""

import itertools
import random
from datetime import UTC, datetime, timedelta

from rapidfuzz.distance import Levenshtein

from detections.alerts.plates import OneEditIndex
from detections.journeys.pairing import Pairing, Read, Rule, State, Stored, pair, replay, speed_kmh
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


def test_the_look_alike_index_finds_exactly_the_plates_one_edit_away():
    rng = random.Random(7)
    alphabet = "AB12Ç"  # few characters, so that many plates are near; and one outside the plate alphabet
    plates = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for _ in range(400)}
    index = OneEditIndex(plates)
    for plate in list(plates)[:100] + ["", "A", "ABÇ12", "ZZZZZZZ"]:
        measured = {other for other in plates if other != plate and Levenshtein.distance(plate, other) == 1}
        assert index.near(plate) == measured, plate


def test_a_misreads_look_alikes_are_the_same_spelled_out_for_a_few_end_reads_or_indexed_for_many():
    rng = random.Random(8)
    vehicles = {"".join(rng.choice("AB12Ç") for _ in range(rng.randint(1, 5))) for _ in range(300)}
    starts = [start(vehicle, 0) for vehicle in vehicles]
    many = Pairing(starts, RULE, None)
    for vehicle in list(vehicles)[:60] + ["", "ZZ", "ABÇ12"]:
        measured = {other for other in vehicles if Levenshtein.distance(vehicle, other) == 1}
        assert Pairing(starts, RULE, None).neighbours(vehicle) == measured  # the first look-up: spelled out
        assert many.neighbours(vehicle) == measured
    assert many.index is not None  # past a few look-ups: indexed


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


def repaired(old: list, starts: list[Read], ends: list[Read], rule: Rule, changes: list[datetime], extent):
    """The stored journeys `old` repaired after `changes` as the engine does: from
    each change not yet paired again, `replay` from the state the stored journeys
    tell (as they were: nothing is stored until the end), reading `extent` ahead
    (None: to the end) and further while it asks."""
    window = timedelta(seconds=rule.max_seconds)
    journeys = {p.end.detection_id: p for p in old}
    pending, replaced, stops = sorted(changes), {}, []
    while pending:
        since, ahead = pending[0], extent
        state = State(taken={p.start.detection_id for p in old if p.end.at < since})
        for e in sorted(ends, key=lambda r: r.order):
            if e.at < since:
                state.last_end[e.vehicle] = e.at
        while True:
            until = None if ahead is None else since + ahead

            def before(r, until=until):
                return until is None or r.at < until

            found = replay(
                [r for r in starts if r.at >= since - window and before(r)],
                [r for r in ends if r.at >= since and before(r)],
                rule,
                state,
                {
                    p.end.detection_id: Stored(p.start.detection_id, p.start.at)
                    for p in old
                    if p.end.at >= since and before(p.end)
                },
                pending,
                until,
            )
            if found is not None:
                break
            ahead *= 2
        for end_id, p in journeys.items():
            if p.end.at >= since and (found.stop is None or p.end.at < found.stop):
                replaced[end_id] = None
        replaced.update({p.end.detection_id: p for p in found.pairs})
        stops.append(found.stop)
        pending = [c for c in pending if found.stop is not None and c >= found.stop]
    journeys.update(replaced)
    return sorted((p.start.detection_id, p.end.detection_id, p.fuzzy) for p in journeys.values() if p), stops


def day_of_reads(rng: random.Random, n: int) -> list[Read]:
    vehicles = ["34A8C123", "34A8C124", "34A8C125", "06XY277", "06XY278", "35KL001", "35KL002", "07MN9"]
    return [
        read(rng.choice(vehicles), rng.randrange(0, 20000, 3), rng.choice([START, END]), tracking_id=f"t{rng.random()}")
        for _ in range(n)
    ]


def test_a_replay_from_the_changes_gives_the_rule_over_the_final_reads_and_stops_where_it_meets_the_stored_one():
    rng = random.Random(5)
    rule = Rule(max_seconds=600, repeat_seconds=60)
    stopped_early = 0
    for _ in range(150):
        before = day_of_reads(rng, rng.randint(20, 200))
        after = [r for r in before if rng.random() > 0.03]  # deleted
        changes = [r.at for r in before if r not in after]
        for r in rng.sample(after, min(len(after), rng.randint(0, 3))):  # a plate corrected
            after.remove(r)
            moved = Read(
                r.detection_id, rng.choice(["34A8C123", "06XY277", "99ZZ999"]), r.at, r.tracking_id, r.camera_id
            )
            after.append(moved)
            changes.append(r.at)
        for r in day_of_reads(rng, rng.randint(0, 8)):  # late
            after.append(r)
            changes.append(r.at)
        if not changes:
            continue
        old = pair([r for r in before if r.camera_id == START], [r for r in before if r.camera_id == END], rule)
        starts = [r for r in after if r.camera_id == START]
        ends = [r for r in after if r.camera_id == END]
        expected = sorted(pairs_of(starts, ends, rule))
        for extent in (None, timedelta(seconds=700), timedelta(seconds=3000)):
            got, stops = repaired(old, starts, ends, rule, changes, extent)
            assert got == expected
            stopped_early += sum(stop is not None for stop in stops)
    assert stopped_early > 100  # most replays end long before the day's last read
