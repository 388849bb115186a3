"""Watch-lists for the watch-match and s0-watch rows: 100,000 plates in three lists,
five rules, and the plates the posters send (1% of them on a list).

Plates are the simulator's (`detections.simulation.camera.random_plate`,
'34ABC123'). A random plate is within one edit of one of 80,000 fuzzy entries
about 1% of the time, so the plates meant not to match are checked against the
lists with the app's own index (`PlateIndex`) and redrawn when they do.

Everything here needs Django set up (the caller's job); the database is the
benchmark's, `vm_bench`.
"""

import random
from datetime import UTC, datetime

from database import fresh_django_connection

# name: (match, max_edits, entries)
LISTS = {
    "bench stolen": ("fuzzy", 1, 40_000),
    "bench wanted": ("fuzzy", 1, 40_000),
    "bench permits": ("exact", 0, 20_000),
}
MATCH_SHARE = 0.01
ALPHABET_LETTERS = "ACDEFGHJKLMNPRTUVWXY"  # what is left of A-Z after normalize() folds look-alikes


def draw_lists(rng: random.Random) -> dict[str, list[str]]:
    """The plates of each list, distinct in their normal form within a list (the unique constraint)."""
    from detections.alerts.plates import normalize
    from detections.simulation.camera import random_plate

    lists = {}
    for name, (_, _, size) in LISTS.items():
        seen: dict[str, str] = {}
        while len(seen) < size:
            plate = random_plate(rng)
            seen.setdefault(normalize(plate), plate)
        lists[name] = list(seen.values())
    return lists


def indexes(lists: dict[str, list[str]]):
    """name -> PlateIndex of the list, as config.load() builds it."""
    from detections.alerts.matching import Entry, PlateIndex
    from detections.alerts.plates import normalize

    built = {}
    next_id = 1
    for name, plates in lists.items():
        _, edits, _ = LISTS[name]
        entries = []
        for plate in plates:
            entries.append(Entry(id=next_id, plate=plate, normalized=normalize(plate), expires_at=None))
            next_id += 1
        built[name] = PlateIndex(entries, edits)
    return built


def one_edit(plate: str, rng: random.Random) -> str:
    """`plate` with one letter replaced by another (a fuzzy match, distance 1)."""
    letters = [i for i, c in enumerate(plate) if c.isalpha()]
    i = rng.choice(letters)
    other = rng.choice([c for c in ALPHABET_LETTERS if c != plate[i]])
    return plate[:i] + other + plate[i + 1 :]


def draw_sequence(lists, built, count: int, rng: random.Random) -> tuple[list[str], set[str]]:
    """`count` plates to post: MATCH_SHARE of them on a list (each a different entry,
    so that no rule's cooldown holds one back; half of the fuzzy ones one edit off),
    the rest on none. Returns the plates in order and the set of those that match."""
    from detections.alerts.plates import normalize
    from detections.simulation.camera import random_plate

    now = datetime.now(UTC)
    matching_count = max(1, round(count * MATCH_SHARE))
    positions = set(rng.sample(range(count), matching_count))
    names = list(lists)
    used: set[str] = set()
    sequence, matching = [], set()
    for n in range(count):
        if n in positions:
            while True:
                name = rng.choice(names)
                plate = rng.choice(lists[name])
                if plate in used:
                    continue
                used.add(plate)
                if LISTS[name][0] == "fuzzy" and rng.random() < 0.5:
                    variant = one_edit(plate, rng)
                    if built[name].best_match(normalize(variant), now) is not None:
                        plate = variant
                break
            matching.add(plate)
        else:
            while True:
                plate = random_plate(rng)
                key = normalize(plate)
                if all(index.best_match(key, now) is None for index in built.values()):
                    break
        sequence.append(plate)
    return sequence, matching


def rules_spec() -> list[dict]:
    """Five rules: one per list, one on cameras and vehicle types, one with a
    schedule (the last two on the fuzzy lists, so that every alert is a plate's).
    Cooldowns as a site would set them."""
    return [
        {"name": "bench stolen", "watchlist": "bench stolen", "cooldown_seconds": 300},
        {"name": "bench wanted", "watchlist": "bench wanted", "cooldown_seconds": 300},
        {"name": "bench permits", "watchlist": "bench permits", "cooldown_seconds": 60},
        {
            "name": "bench stolen at gates 1-2",
            "watchlist": "bench stolen",
            "cameras": ["gate-1", "gate-2"],
            "vehicle_types": ["car", "van"],
            "min_confidence": 0.6,
            "cooldown_seconds": 300,
        },
        {
            "name": "bench wanted at night",
            "watchlist": "bench wanted",
            "schedule": {"days": [0, 1, 2, 3, 4], "from": "20:00", "to": "08:00", "tz": "Europe/Istanbul"},
            "cooldown_seconds": 300,
        },
    ]


def load_into_database(lists: dict[str, list[str]]) -> dict:
    """The lists, their entries (bulk insert) and the rules in vm_bench; then the
    revision bump every server process reloads on. How long each part took."""
    fresh_django_connection()
    import time

    from django.db import transaction

    from detections.alerts import config
    from detections.alerts.plates import normalize
    from detections.models import AlertRule, Watchlist, WatchlistEntry

    started = time.monotonic()
    with transaction.atomic():
        made = {}
        for name, (match, edits, _) in LISTS.items():
            made[name] = Watchlist.objects.create(name=name, match=match, max_edits=edits)
        WatchlistEntry.objects.bulk_create(
            (
                WatchlistEntry(watchlist=made[name], plate=plate, plate_normalized=normalize(plate))
                for name, plates in lists.items()
                for plate in plates
            ),
            batch_size=5000,
        )
        for spec in rules_spec():
            AlertRule.objects.create(**{**spec, "watchlist": made[spec["watchlist"]]})
        # bulk_create sends no signals: say it here, in the same transaction.
        config.changed()
    inserted = time.monotonic() - started
    started = time.monotonic()
    snapshot = config.load()
    loaded = time.monotonic() - started
    return {
        "insert_seconds": inserted,
        "config_load_seconds": loaded,
        "rules": len(snapshot.rules),
        "entries": sum(len(index) for _, index in snapshot.watchlists.values()),
    }


def remove_from_database():
    """The bench's rules, lists and alerts gone, so that later rows run without them."""
    fresh_django_connection()
    from django.db import connection, transaction

    from detections.alerts import config
    from detections.models import Alert, AlertCooldown, AlertRule, Watchlist, WatchlistEntry

    with transaction.atomic():
        Alert.objects.all().delete()
        AlertCooldown.objects.all().delete()
        AlertRule.objects.all().delete()
        with connection.cursor() as cursor:
            # 100k entries: one statement, not Django's collector.
            cursor.execute(f"DELETE FROM {WatchlistEntry._meta.db_table}")
        Watchlist.objects.all().delete()
        config.changed()


def count_alerts(prefix: str, matching: set[str]) -> dict:
    """For the row's detections: how many carry a plate meant to match, how many
    raised at least one alert, and the alerts by rule."""
    fresh_django_connection()
    from django.db.models import Count

    from detections.models import Alert, Detection

    rows = list(Detection.objects.filter(tracking_id__startswith=prefix).values_list("pk", "plate"))
    ids = [pk for pk, _ in rows]
    expected = {pk for pk, plate in rows if plate in matching}
    alerts = Alert.objects.filter(detection_id__in=ids)
    alerted = set(alerts.values_list("detection_id", flat=True))
    by_rule = dict(alerts.values_list("rule_name").annotate(n=Count("id")).values_list("rule_name", "n"))
    return {
        "detections": len(ids),
        "expected_alerted": len(expected),
        "alerted": len(alerted),
        "alerted_unexpected": len(alerted - expected),
        "expected_not_alerted": len(expected - alerted),
        "alerts": sum(by_rule.values()),
        "alerts_by_rule": by_rule,
    }
