"""The watch-match row, in one process of its own (no server): checking a plate
against 100,000 watched plates.

    DATABASE_URL=... python benchmarks/watch_match.py [--queries N]

Builds the three lists of watch.LISTS as config.load() does (Entry objects, then
a PlateIndex per list), timing the build and measuring its memory (RSS delta of
the first build; tracemalloc of a second one), then times, per detection,
`PlateIndex.best_match` on each list and `raising.candidates` for the five rules
of watch.rules_spec(). Prints one JSON object.
"""

import argparse
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import watch

ROOT = Path(__file__).resolve().parent.parent
CAMERAS = ["gate-1", "gate-2", "gate-3", "gate-4"]
TYPES = ["car"] * 12 + ["van"] * 2 + ["truck"] * 2 + ["motorcycle"] * 2 + ["bus", "bicycle"]


def summary(samples_ns: list[int]) -> dict:
    values = sorted(samples_ns)

    def at(q):
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] / 1e6

    return {
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": values[-1] / 1e6,
        "mean_ms": sum(values) / len(values) / 1e6,
    }


def snapshot_of(built):
    from detections.alerts import schedules
    from detections.alerts.config import Rule, Snapshot

    ids = {name: n for n, name in enumerate(built, start=1)}
    rules = tuple(
        Rule(
            id=n,
            name=spec["name"],
            watchlist_id=ids[spec["watchlist"]],
            cameras=frozenset(spec.get("cameras", ())),
            vehicle_types=frozenset(spec.get("vehicle_types", ())),
            min_confidence=spec.get("min_confidence"),
            schedule=schedules.Schedule.parse(spec["schedule"]) if spec.get("schedule") else None,
            cooldown=timedelta(seconds=spec["cooldown_seconds"]),
        )
        for n, spec in enumerate(watch.rules_spec(), start=1)
    )
    return Snapshot(revision=1, rules=rules, watchlists={ids[name]: (name, index) for name, index in built.items()})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=20_000)
    args = parser.parse_args()
    # Django first: the app's modules need their settings.
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vehicle_monitor.settings")
    import django

    django.setup()
    from detections.alerts import raising
    from detections.alerts.plates import normalize
    from detections.models import Camera, Detection

    rng = random.Random(2026)
    lists = watch.draw_lists(rng)

    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    built = watch.indexes(lists)
    build_seconds = time.perf_counter() - started
    gc.collect()
    rss_delta = psutil.Process().memory_info().rss - rss_before

    # Memory of the structures themselves, in a second build (tracemalloc slows it down).
    tracemalloc.start()
    again = watch.indexes(lists)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del again

    plates, matching = watch.draw_sequence(lists, built, args.queries, rng)
    keys = [normalize(p) for p in plates]
    now = datetime.now(UTC)
    per_list = {name: [] for name in built}
    all_lists = []
    found = 0
    timer = time.perf_counter_ns
    for key in keys:
        total = 0
        hit = False
        for name, index in built.items():
            t0 = timer()
            match = index.best_match(key, now)
            elapsed = timer() - t0
            per_list[name].append(elapsed)
            total += elapsed
            hit = hit or match is not None
        all_lists.append(total)
        found += hit

    cameras = {name: Camera(name=name) for name in CAMERAS}
    detections = [
        Detection(
            camera=cameras[CAMERAS[n % 4]],
            tracking_id=f"t{n}",
            vehicle_type=TYPES[n % len(TYPES)],
            detected_at=now,
            confidence=0.55 + (n % 45) / 100,
            plate=plate,
            plate_normalized=key,
        )
        for n, (plate, key) in enumerate(zip(plates, keys, strict=True))
    ]
    snapshot = snapshot_of(built)
    per_detection = []
    raised = 0
    for detection in detections:
        t0 = timer()
        found_here = raising.candidates([detection], snapshot, now)
        per_detection.append(timer() - t0)
        raised += bool(found_here)

    print(
        json.dumps(
            {
                "entries": sum(len(index) for index in built.values()),
                "lists": {name: len(index) for name, index in built.items()},
                "build_seconds": build_seconds,
                "rss_delta_mb": rss_delta / 2**20,
                "traced_mb": traced / 2**20,
                "queries": len(keys),
                "meant_to_match": sum(p in matching for p in plates),
                "matched": found,
                "detections_with_candidates": raised,
                "best_match": {name: summary(samples) for name, samples in per_list.items()},
                "best_match_all_lists": summary(all_lists),
                "candidates_5_rules": summary(per_detection),
            }
        )
    )


if __name__ == "__main__":
    main()
