"""Every created detection is checked against the active watch-lists and rules
inside its write transaction: alerts are stored and logged with their own seq
(the event log is the webhook outbox), or held back by a cooldown."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from conftest import MOMENT
from django.utils import timezone

from detections.alerts import config, plates
from detections.alerts.matching import Entry, PlateIndex
from detections.alerts.schedules import Schedule
from detections.core import writes
from detections.core.writes import NewDetection, detections_create
from detections.models import (
    Alert,
    AlertRule,
    Camera,
    Detection,
    Event,
    MatchMode,
    Watchlist,
    WatchlistEntry,
    WebhookEndpoint,
    WebhookMessage,
)
from detections.operations import metrics, retention
from detections.webhooks import outbox

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _config_read_at_every_detection(settings):
    settings.ALERT_CONFIG_CHECK_SECONDS = 0
    config.forget()


def watch(*plates_typed, name="stolen vehicles", match=MatchMode.FUZZY, max_edits=1, expires_at=None, **rule):
    watchlist = Watchlist.objects.create(name=name, match=match, max_edits=max_edits)
    for plate in plates_typed:
        WatchlistEntry.objects.create(
            watchlist=watchlist, plate=plate, plate_normalized=plates.normalize(plate), expires_at=expires_at
        )
    return AlertRule.objects.create(name=f"{name} rule", watchlist=watchlist, **rule)


def seen(plate="", *, camera="gate-1", at=MOMENT, vehicle_type="car", confidence=0.9, tracking_id=None) -> Detection:
    (outcome,) = detections_create(
        [
            sighting(
                plate, camera=camera, at=at, vehicle_type=vehicle_type, confidence=confidence, tracking_id=tracking_id
            )
        ]
    )
    return outcome.detection


def sighting(plate="", *, camera="gate-1", at=MOMENT, vehicle_type="car", confidence=0.9, tracking_id=None):
    return NewDetection(
        camera=Camera.objects.get_or_create(name=camera)[0],
        tracking_id=tracking_id or f"trk-{plate or 'none'}-{at.timestamp()}",
        vehicle_type=vehicle_type,
        detected_at=at,
        confidence=confidence,
        plate=plate,
    )


# --- Matching -------------------------------------------------------------------------------


def test_a_plate_is_normalised_to_upper_case_without_separators_and_with_look_alikes_folded():
    assert plates.normalize("34 abc-1.23") == "34A8C123"
    assert plates.normalize("OQ IZ SB") == "001258"


@pytest.mark.parametrize("max_edits", [0, 1, 2])
def test_the_plate_index_finds_exactly_the_entries_a_full_scan_finds(max_edits):
    from rapidfuzz.distance import Levenshtein

    rng = random.Random(max_edits)
    alphabet = "0123456789ACDEFGHJKLMNPRTUVWXY"
    stored = sorted({"".join(rng.choices(alphabet, k=rng.randint(2, 9))) for _ in range(3000)})
    entries = [Entry(id=n, plate=p, normalized=p, expires_at=None) for n, p in enumerate(stored)]
    index = PlateIndex(entries, max_edits)
    queries = ["".join(rng.choices(alphabet, k=rng.randint(1, 10))) for _ in range(300)]
    for entry in entries[:300]:  # near misses of stored plates: one or two characters changed
        chars = list(entry.normalized)
        for _ in range(rng.randint(1, 2)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        queries.append("".join(chars))

    for query in queries:
        nearest = min(Levenshtein.distance(query, e.normalized) for e in entries)
        found = index.best_match(query, MOMENT)
        if nearest <= max_edits:
            assert found is not None and found.distance == nearest, query
        else:
            assert found is None, query


def test_an_entry_that_has_expired_never_matches():
    entry = Entry(id=1, plate="34 ABC 123", normalized="34A8C123", expires_at=MOMENT)
    index = PlateIndex([entry], 1)
    assert index.best_match("34A8C123", MOMENT - timedelta(seconds=1)).distance == 0
    assert index.best_match("34A8C123", MOMENT) is None


def test_a_window_that_passes_midnight_belongs_to_the_day_it_starts():
    friday_nights = Schedule.parse({"days": [4], "from": "22:00", "to": "06:00", "tz": "Europe/Istanbul"})
    # 2026-11-27 is a Friday; Istanbul is UTC+3.
    assert friday_nights.covers(datetime(2026, 11, 27, 19, 30, tzinfo=UTC))  # Fri 22:30
    assert friday_nights.covers(datetime(2026, 11, 28, 2, 0, tzinfo=UTC))  # Sat 05:00
    assert not friday_nights.covers(datetime(2026, 11, 28, 4, 0, tzinfo=UTC))  # Sat 07:00
    assert not friday_nights.covers(datetime(2026, 11, 28, 19, 30, tzinfo=UTC))  # Sat 22:30
    assert not friday_nights.covers(datetime(2026, 11, 27, 2, 0, tzinfo=UTC))  # Fri 05:00


# --- Raising --------------------------------------------------------------------------------


def test_a_plate_on_a_fuzzy_list_raises_an_alert_through_a_look_alike_and_one_edit():
    rule = watch("34 ABC 123")

    detection = seen("34-A8C-124")  # B read as 8, and 3 read as 4

    alert = Alert.objects.get()
    assert (alert.rule, alert.matched_plate, alert.distance, alert.detection_id) == (
        rule,
        "34 ABC 123",
        1,
        detection.pk,
    )
    assert alert.entry_id == WatchlistEntry.objects.get().pk
    assert alert.detection["plate"] == "34-A8C-124"


def test_a_plate_two_edits_away_an_expired_entry_and_an_exact_list_near_miss_raise_nothing():
    watch("34 ABC 123", name="fuzzy")
    watch("06 XYZ 99", name="expired", expires_at=timezone.now() - timedelta(minutes=1))
    watch("35 DEF 456", name="exact", match=MatchMode.EXACT)

    seen("34ABC199")
    seen("06XYZ99")
    seen("35DEF457")

    assert not Alert.objects.exists()


def test_the_alert_is_an_event_with_the_next_seq_after_its_detection_and_carries_the_protocol_fields():
    watch("34 ABC 123")

    detection = seen("34ABC123")

    created, raised = Event.objects.order_by("seq")
    assert (created.kind, raised.kind, raised.seq) == ("new_detection", "alert", created.seq + 1)
    alert = Alert.objects.get()
    assert raised.payload == {
        "type": "alert",
        "seq": raised.seq,
        "alert_id": alert.pk,
        "rule": "stolen vehicles rule",
        "watchlist": "stolen vehicles",
        "entry_id": alert.entry_id,
        "matched_plate": "34 ABC 123",
        "distance": 0,
        "detection": {k: v for k, v in created.payload.items() if k != "type"},
        "camera": "gate-1",
        "vehicle_type": "car",
    }
    assert raised.payload["detection"]["id"] == detection.pk
    assert alert.seq == raised.seq


def test_the_cooldown_holds_back_a_repeat_while_detection_times_are_closer_than_it(
    django_capture_on_commit_callbacks,
):
    rule = watch("34 ABC 123", cooldown_seconds=300)
    held_before = metrics.ALERTS_HELD_BACK.labels(rule=rule.name)._value.get()

    with django_capture_on_commit_callbacks(execute=True):
        seen("34ABC123", at=MOMENT)
        seen("34ABC123", at=MOMENT + timedelta(seconds=120))  # held back
        seen("34ABC123", at=MOMENT - timedelta(seconds=200))  # late (from a spool), still within 300 s: held back
        seen("34ABC123", at=MOMENT + timedelta(seconds=301))  # raised

    assert [a.detected_at for a in Alert.objects.order_by("seq")] == [MOMENT, MOMENT + timedelta(seconds=301)]
    assert metrics.ALERTS_HELD_BACK.labels(rule=rule.name)._value.get() == held_before + 2


def test_a_rule_meets_every_condition_it_gives_and_a_rule_without_a_list_needs_no_plate():
    AlertRule.objects.create(
        name="trucks at the gate with confidence",
        cameras=["gate-1"],
        vehicle_types=["truck"],
        min_confidence=0.5,
    )

    seen(camera="gate-1", vehicle_type="truck", confidence=0.8)  # raised: no plate needed
    seen(camera="yard", vehicle_type="truck", confidence=0.8)
    seen(camera="gate-1", vehicle_type="car", confidence=0.8)
    seen(camera="gate-1", vehicle_type="truck", confidence=0.4)
    seen(camera="gate-1", vehicle_type="truck", confidence=None, tracking_id="no-confidence")

    assert [(a.camera, a.vehicle_type, a.watchlist_id) for a in Alert.objects.all()] == [("gate-1", "truck", None)]


def test_an_inactive_rule_or_list_raises_nothing():
    rule = watch("34 ABC 123")
    AlertRule.objects.filter(pk=rule.pk).update(active=False)
    config.changed()
    seen("34ABC123", at=MOMENT)
    AlertRule.objects.filter(pk=rule.pk).update(active=True)
    Watchlist.objects.update(active=False)
    config.changed()
    seen("34ABC123", at=MOMENT + timedelta(seconds=1))

    assert not Alert.objects.exists()


def test_a_batch_raises_an_alert_for_each_matching_detection_and_a_retried_one_raises_none():
    watch("34 ABC 123", "06 XYZ 99")
    batch = [
        sighting("34ABC123", at=MOMENT),
        sighting("11AAA11", at=MOMENT + timedelta(seconds=1)),
        sighting("06XYZ98", at=MOMENT + timedelta(seconds=2)),
    ]

    detections_create(batch)
    detections_create(batch)  # a unit retrying the whole batch

    assert sorted(Alert.objects.values_list("matched_plate", "distance")) == [("06 XYZ 99", 1), ("34 ABC 123", 0)]


def test_an_entry_added_takes_effect_at_the_next_detection():
    rule = watch()
    seen("34ABC123", at=MOMENT)
    WatchlistEntry.objects.create(watchlist=rule.watchlist, plate="34ABC123", plate_normalized="34A8C123")

    seen("34ABC123", at=MOMENT + timedelta(seconds=1))

    assert Alert.objects.get().detected_at == MOMENT + timedelta(seconds=1)


def test_deleting_the_detection_keeps_its_alert():
    watch("34 ABC 123")
    detection = seen("34ABC123")

    writes.detection_delete(detection=detection)

    assert Alert.objects.get().detection_id == detection.pk


# --- The webhook outbox ---------------------------------------------------------------------


def endpoint(*events, cameras=()):
    return WebhookEndpoint.objects.create(
        url="https://gate.example/hook", events=list(events), cameras=list(cameras), secret_encrypted="x"
    )


def bodies(hook) -> list[dict]:
    return [json.loads(m.body) for m in WebhookMessage.objects.filter(endpoint=hook).order_by("seq")]


def fanned_out():
    """What a delivery worker does when it wakes: every event's messages made."""
    while outbox.fan_out():
        pass


def test_an_alert_and_its_detection_reach_the_outbox_of_the_endpoints_that_take_them(settings):
    settings.PUBLIC_BASE_URL = "https://monitor.example"
    watch("34 ABC 123")
    alerts_only = endpoint("alert.triggered")
    everything = endpoint("alert.triggered", "detection.created", "detection.deleted")
    other_camera = endpoint("alert.triggered", "detection.created", cameras=["yard"])

    detection = seen("34ABC123")
    assert not WebhookMessage.objects.exists()  # the write path writes the events only
    fanned_out()

    (alert,) = bodies(alerts_only)
    created, alert_again = bodies(everything)
    assert alert == alert_again
    assert bodies(other_camera) == []
    raised = Event.objects.get(kind="alert")
    assert alert["type"] == "alert.triggered"
    assert alert["seq"] == raised.seq
    assert alert["data"]["alert_id"] == Alert.objects.get().pk
    assert alert["data"]["detection"]["image_url"] in ("", None) or alert["data"]["detection"]["image_url"].startswith(
        "https://monitor.example/"
    )
    assert "type" not in alert["data"] and "seq" not in alert["data"]
    assert created["type"] == "detection.created"
    assert created["data"]["id"] == detection.pk
    message_ids = list(WebhookMessage.objects.values_list("message_id", flat=True))
    assert len(set(message_ids)) == len(message_ids) == 3


def test_deletions_reach_the_outbox_but_retention_purges_do_not():
    hook = endpoint("detection.deleted")
    deleted = seen("11AAA11", at=timezone.now())
    purged = seen("22BBB22", at=timezone.now() - timedelta(days=40))

    writes.detection_delete(detection=deleted)
    retention.purge_detections(timezone.now() - timedelta(days=30))
    fanned_out()

    assert not Detection.objects.filter(pk=purged.pk).exists()
    assert [(b["type"], b["data"]["deleted_id"]) for b in bodies(hook)] == [("detection.deleted", deleted.pk)]


def test_nothing_is_written_to_the_outbox_without_endpoints():
    watch("34 ABC 123")
    seen("34ABC123")
    fanned_out()
    assert not WebhookMessage.objects.exists()


# --- Retention --------------------------------------------------------------------------------


def test_alerts_older_than_their_retention_are_purged(settings):
    settings.ALERT_RETENTION_DAYS = 10
    watch("34 ABC 123", "06 XYZ 99")
    seen("34ABC123")
    seen("06XYZ99")
    old, recent = Alert.objects.order_by("seq")
    Alert.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=11))

    assert retention.purge_alerts_and_messages(timezone.now()) == (1, 0)
    assert list(Alert.objects.all()) == [recent]


def test_a_large_configuration_is_reloaded_apart_while_ingest_carries_on_with_the_one_it_has(transactional_db):
    rule = watch("34 ABC 123")
    before = config.current()
    config._current.load_seconds = 1.0  # as if indexing the lists took a second
    WatchlistEntry.objects.create(
        watchlist=rule.watchlist, plate="06 XYZ 99", plate_normalized=plates.normalize("06 XYZ 99")
    )

    assert config.current() is before  # not held up by the reload
    config._current.loading.join(timeout=10)

    reloaded = config.current()
    assert reloaded.revision > before.revision
    assert len(reloaded.watchlists[rule.watchlist_id][1]) == 2


def test_a_rule_whose_list_vanished_while_the_snapshot_was_read_raises_nothing():
    from detections.alerts import raising

    rule = config.Rule(
        id=1,
        name="stolen",
        watchlist_id=99,
        cameras=frozenset(),
        vehicle_types=frozenset(),
        min_confidence=None,
        schedule=None,
        cooldown=timedelta(0),
    )
    snapshot = config.Snapshot(revision=1, rules=(rule,), watchlists={})
    detection = Detection(
        camera=Camera(name="gate-1"), vehicle_type="car", detected_at=MOMENT, plate_normalized="34A8C123"
    )

    assert raising.candidates([detection], snapshot, MOMENT) == []
