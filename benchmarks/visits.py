"""The visits benchmark: one command, one table (benchmarks/README.md, "Visits").

    .venv/bin/python benchmarks/visits.py                    # every part (~30-40 min)
    .venv/bin/python benchmarks/visits.py --quick            # 1,000 vehicles, 100k visits (~5 min)
    .venv/bin/python benchmarks/visits.py --parts accuracy   # accuracy,reads,lag (any of them)

- accuracy: a generated day with ground truth (visit_day.py) posted through
  `writes.detections_create` in arrival order, the visit engine stepping as its
  follower after every batch; the share of true visits stored right, the same
  day in three arrival orders compared visit by visit, and occupancy at every
  minute of an undamaged day against the truth.
- reads: a million visits bulk-loaded, then the visits list, occupancy by
  minute for a day and dwell for a month over HTTP from the production server.
- lag: the production server and `manage.py follow_visits` as processes, reads
  posted at a steady rate; how long after its answer each read's visit event
  committed; and server + engine + MariaDB CPU per detection with three active
  sites covering every camera against none.

Runs on its own database, `vm_bench_visits` (dropped and made again), and Redis db 9.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_processes import (
    PYTHON,
    ROOT,
    CpuMeter,
    Server,
    process_tree,
    say,
    service_processes,
    start_process,
    stop_all_on_exit,
)
from load import post_steadily

sys.path.insert(0, str(ROOT))

DB_NAME = "vm_bench_visits"
RESULTS = Path(__file__).resolve().parent / "results"


def environment(media: Path) -> dict:
    from database import bench_env

    return {**bench_env(media), "DATABASE_URL": f"mysql://root:@127.0.0.1:3306/{DB_NAME}"}


def recreate_database(env: dict, log: Path):
    from database import mysql

    assert DB_NAME == "vm_bench_visits"  # never any other database
    mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    mysql(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    process = start_process([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, log_path=log)
    if process.wait() != 0:
        raise RuntimeError(f"migrate failed; see {log}")


def setup_django(env: dict):
    """This process's ORM on the benchmark database (the in-memory channel layer:
    what it publishes nobody listens to)."""
    os.environ.update({k: v for k, v in env.items() if k != "REDIS_URL"})
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# --- Accuracy ----------------------------------------------------------------------------------


def make_site(name: str, suffix: str, since: datetime):
    from visit_day import ENTRY_CAMERAS, EXIT_CAMERAS

    from detections.models import Camera
    from detections.sites import edits, engine

    roles = [(camera, "entry") for camera in ENTRY_CAMERAS] + [(camera, "exit") for camera in EXIT_CAMERAS]
    site = edits.site_create(
        name=name,
        since=since,
        cameras=[edits.CameraRole(Camera.objects.get_or_create(name=f"{c}-{suffix}")[0], r) for c, r in roles],
    )
    engine.derive_pending()
    return site


def post_day(reads, suffix: str, *, batch: int = 50) -> float:
    """Store the reads in this order, `batch` at a time, the engine stepping after
    each batch as a follower keeping up would; the seconds it took."""
    from detections.core.writes import NewDetection, detections_create
    from detections.models import Camera
    from detections.sites import engine

    cameras = {}
    started = time.monotonic()
    for first in range(0, len(reads), batch):
        items = []
        for read in reads[first : first + batch]:
            name = f"{read.camera}-{suffix}"
            camera = cameras.get(name) or cameras.setdefault(name, Camera.objects.get(name=name))
            items.append(
                NewDetection(
                    camera=camera, tracking_id=read.key, vehicle_type="car", detected_at=read.at, plate=read.plate
                )
            )
        detections_create(items)
        while engine.step():
            pass
    return time.monotonic() - started


def stored(site) -> list[tuple]:
    """The site's visits, by what they are made of (ids may differ between runs)."""
    from detections.models import Detection, Visit

    rows = list(
        Visit.objects.filter(site=site).values_list(
            "state", "entered_at", "exited_at", "entry_detection_id", "exit_detection_id"
        )
    )
    ids = {i for row in rows for i in row[3:] if i}
    key_of = {}
    for start in range(0, len(ids), 5000):
        chunk = list(ids)[start : start + 5000]
        key_of.update(Detection.objects.filter(pk__in=chunk).values_list("pk", "tracking_id"))
    return sorted(
        (state, entered, exited, key_of.get(entry), key_of.get(exit_)) for state, entered, exited, entry, exit_ in rows
    )


def right_share(truth, visits: list[tuple]) -> tuple[float, Counter]:
    """The issue's measure: a true visit is right when a stored visit has its
    entry and exit reads, or, when its exit was never read, its entry read and
    state exit_missed or expired."""
    by_entry = {}
    for state, _, _, entry, exit_ in visits:
        if entry:
            by_entry[entry] = (state, exit_)
    right, wrong = 0, Counter()
    for visit in truth:
        found = [by_entry[key] for key in visit.entry_keys if key in by_entry]
        if visit.exit_keys:
            ok = any(exit_ in visit.exit_keys for _, exit_ in found)
        else:
            ok = any(state in ("exit_missed", "expired") for state, _ in found)
        if ok:
            right += 1
        else:
            wrong["no stored visit from its entry" if not found else f"stored as {found[0][0]}"] += 1
    return right / len(truth), wrong


def occupancy_errors(site, day) -> tuple[int, int]:
    """Minutes of the day whose stored occupancy (max, min, end) differs from the
    truth's, and the minutes compared."""
    from bisect import bisect_right
    from zoneinfo import ZoneInfo

    from detections.sites.queries import occupancy_series

    entries = sorted(visit.entered_at for visit in day.truth)
    exits = sorted(visit.exited_at for visit in day.truth)
    instants = sorted(set(entries) | set(exits))

    def level(t):  # visits with entered_at <= t < exited_at
        return bisect_right(entries, t) - bisect_right(exits, t)

    series = occupancy_series(site, day.start, day.start + timedelta(days=1), "minute", ZoneInfo("UTC"))
    wrong = 0
    for bucket in series:
        start = bucket.t.astimezone(UTC)
        end = start + timedelta(minutes=1)
        inside = instants[bisect_right(instants, start) : bisect_right(instants, end - timedelta(microseconds=1))]
        levels = [level(start), *(level(t) for t in inside)]
        if (max(levels), min(levels), level(end - timedelta(microseconds=1))) != (bucket.max, bucket.min, bucket.end):
            wrong += 1
    return wrong, len(series)


def run_accuracy(vehicles: int) -> dict:
    from visit_day import arrival_order, make_day

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=4)
    day = make_day(vehicles, seed=1, start=start)
    say(f"accuracy: {vehicles} vehicles, {len(day.truth)} true visits, {len(day.reads)} reads, damage {day.damage}")
    results = {"vehicles": vehicles, "true_visits": len(day.truth), "reads": len(day.reads), "damage": day.damage}
    runs = []
    for order in (11, 12, 13):
        site = make_site(f"order-{order}", f"o{order}", start)
        seconds = post_day(arrival_order(day.reads, seed=order), f"o{order}")
        visits = stored(site)
        share, wrong = right_share(day.truth, visits)
        say(f"  order {order}: {len(visits)} visits in {seconds:.0f} s, {share:.4%} right; wrong: {dict(wrong)}")
        runs.append({"order": order, "seconds": seconds, "right": share, "wrong": dict(wrong), "visits": visits})
    results["runs"] = [{k: v for k, v in run.items() if k != "visits"} for run in runs]
    results["orders_identical"] = runs[0]["visits"] == runs[1]["visits"] == runs[2]["visits"]
    results["orders_differing_visits"] = len(set(runs[0]["visits"]) ^ set(runs[1]["visits"])) + len(
        set(runs[0]["visits"]) ^ set(runs[2]["visits"])
    )
    clean = make_day(vehicles, seed=2, start=start, damage=False)
    site = make_site("undamaged", "clean", start)
    post_day(arrival_order(clean.reads, seed=14), "clean")
    wrong_minutes, minutes = occupancy_errors(site, clean)
    results["occupancy_wrong_minutes"], results["occupancy_minutes"] = wrong_minutes, minutes
    say(f"  undamaged day: occupancy differs from the truth at {wrong_minutes} of {minutes} minutes")
    return results


# --- Reads at a million visits -------------------------------------------------------------------


def bulk_visits(count: int) -> tuple[int, datetime]:
    """`count` visits straight into the table, one site, spread over the past
    year (mostly closed, stays of 2 min to ~17 h), by INSERT ... SELECT from a sequence."""
    from database import mysql

    from detections.sites import edits

    site = edits.site_create(name="a million visits", cameras=[])
    now = datetime.now(UTC).replace(microsecond=0)
    year_s = 365 * 24 * 3600
    step = year_s / count
    chunk = 100_000
    plate = "CONCAT('34B', LPAD(s.seq % 100000, 5, '0'))"  # 100,000 vehicles, ten visits each
    entered = f"('{now:%Y-%m-%d %H:%M:%S}' - INTERVAL ROUND({year_s} - s.seq * {step}) SECOND)"
    stay = "(120 + (s.seq * 7919) % 60000)"  # 2 min to ~17 h
    for first in range(1, count + 1, chunk):
        last = min(count, first + chunk - 1)
        mysql(
            f"""
            INSERT INTO detections_visit
              (site_id, vehicle, plate, state, anchor_detection_id, anchor_at, entered_at, exited_at, ends_at,
               duration_seconds, entry_detection_id, exit_detection_id, entry_camera, exit_camera, vehicle_type,
               overstay, overstay_at, overstay_raised, created_at, updated_at)
            SELECT {site.pk}, {plate.replace("34B", "348")}, {plate}, IF(s.seq % 50 = 0, 'exit_missed', 'closed'), s.seq,
                   {entered}, {entered}, {entered} + INTERVAL {stay} SECOND, {entered} + INTERVAL {stay} SECOND,
                   {stay}, 2 * s.seq, 2 * s.seq + 1, 'e1', 'x1', 'car', 0, NULL, 1, NOW(6), NOW(6)
            FROM seq_{first}_to_{last} s
            """,
            DB_NAME,
        )
    mysql("ANALYZE TABLE detections_visit", DB_NAME)
    return site.pk, now


def time_gets(client, path: str, params: dict, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def viewer_token() -> str:
    from django.contrib.auth.models import Permission, User
    from rest_framework.authtoken.models import Token

    user, _ = User.objects.get_or_create(username="visit-bench")
    user.user_permissions.add(Permission.objects.get(codename="view_visit"))
    return Token.objects.get_or_create(user=user)[0].key


def run_reads(count: int, env: dict, workdir: Path, n: int) -> dict:
    import httpx

    started = time.monotonic()
    site_id, now = bulk_visits(count)
    say(f"reads: {count} visits loaded in {time.monotonic() - started:.0f} s")
    token = viewer_token()
    server = Server("uvicorn", 1, env, workdir / "server.log", [])
    try:
        day = now - timedelta(days=100)
        queries = {
            "visits list (first page)": (f"/api/sites/{site_id}/visits/", {}),
            "visits list (a plate)": (f"/api/sites/{site_id}/visits/", {"plate": "34B01234"}),
            "occupancy by minute, a day": (
                f"/api/sites/{site_id}/occupancy/",
                {"bucket": "minute", "since": day.isoformat(), "until": (day + timedelta(days=1)).isoformat()},
            ),
            "dwell, a month": (
                f"/api/sites/{site_id}/dwell/",
                {"since": (day - timedelta(days=30)).isoformat(), "until": day.isoformat()},
            ),
        }
        results = {}
        with httpx.Client(base_url=server.urls[0], headers={"Authorization": f"Token {token}"}, timeout=60) as client:
            for name, (path, params) in queries.items():
                time_gets(client, path, params, 3)  # warm
                samples = time_gets(client, path, params, n)
                results[name] = {"p50_ms": statistics.median(samples), "p99_ms": pct(samples, 99), "n": n}
                say(f"  {name}: median {results[name]['p50_ms']:.1f} ms, p99 {results[name]['p99_ms']:.1f} ms")
    finally:
        server.stop()
    return {"visits": count, "queries": results}


# --- Lag and cost ----------------------------------------------------------------------------------


def run_lag(env: dict, workdir: Path, rate: float, seconds: float) -> dict:
    """Reads at a steady `rate` through the production server, the engine following;
    first with no site, then with three sites over every camera."""
    from detections.core.device_keys import issue_device_key
    from detections.models import Camera
    from detections.sites import edits

    cameras = [Camera.objects.get_or_create(name=f"lag-{n}")[0] for n in range(4)]
    _, key = issue_device_key(cameras=cameras, label="visit bench")
    server = Server("uvicorn", 1, env, workdir / "server.log", [])
    engine = start_process([PYTHON, "manage.py", "follow_visits"], env=env, log_path=workdir / "engine.log")
    meter = CpuMeter(
        {
            "server": server.all_processes,
            "engine": lambda: process_tree(engine.pid),
            "db": lambda: service_processes("mariadbd", "mysqld"),
        }
    )
    results = {"rate": rate, "seconds": seconds}
    try:
        for phase in ("no sites", "three sites"):
            if phase == "three sites":
                for n, (entry, leave) in enumerate([(0, 1), (2, 3), (1, 2)]):
                    edits.site_create(
                        name=f"lag site {n}",
                        cameras=[
                            edits.CameraRole(cameras[entry], "entry"),
                            edits.CameraRole(cameras[leave], "exit"),
                            edits.CameraRole(cameras[(leave + 1) % 4], "both"),
                        ],
                    )
                _wait_derived()
            before = meter.snapshot()
            answered = asyncio.run(post_steadily(server.urls[0], key, [c.name for c in cameras], rate, seconds, phase))
            _wait_engine_caught_up()  # the engine's work on the last reads counts too
            after = meter.snapshot()
            used = CpuMeter.seconds(before, after)
            per_det = {group: used[group] * 1000 / len(answered) for group in used}
            record = {"detections": len(answered), "cpu_ms_per_det": per_det, "total_ms_per_det": sum(per_det.values())}
            if phase == "three sites":
                lags = _visit_lags(answered)
                record.update(
                    {
                        "lag_samples": len(lags),
                        "lag_p50_ms": statistics.median(lags),
                        "lag_p99_ms": pct(lags, 99),
                        "lag_max_ms": max(lags),
                    }
                )
            results[phase] = record
            say(f"  {phase}: {json.dumps(record)}")
    finally:
        server.stop()
        from bench_processes import stop_process

        stop_process(engine)
    results["cost_ratio"] = results["three sites"]["total_ms_per_det"] / results["no sites"]["total_ms_per_det"]
    return results


def _wait_derived():
    from django.db.models import F

    from detections.sites.models import Site

    while Site.objects.filter(active=True).exclude(derived_revision=F("revision")).exists():
        time.sleep(0.2)


def _wait_engine_caught_up():
    from detections.models import FollowerCursor, feed_head

    deadline = time.monotonic() + 300
    while not FollowerCursor.objects.filter(name="visits", position__gte=feed_head()).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the engine did not catch up within 300 s")
        time.sleep(0.2)


def _visit_lags(answered: dict[int, float]) -> list[float]:
    """For each read that made or changed a visit: its visit event's time (taken
    in the engine's transaction, just before it commits) minus the time its
    answer arrived, in ms."""
    from detections.models import Event, EventKind

    first_event = {}
    for created_at, payload in Event.objects.filter(kind=EventKind.VISIT).values_list("created_at", "payload"):
        visit = payload["visit"]
        for read in (visit.get("entry_detection"), visit.get("exit_detection")):
            if read in answered and read not in first_event:
                first_event[read] = created_at.timestamp()
    return [max(0.0, (first_event[read] - answered[read]) * 1000) for read in first_event]


# --- The table -----------------------------------------------------------------------------------


def table(results: dict) -> str:
    lines = ["| target | result | met? |", "|---|---|---|"]
    accuracy = results.get("accuracy")
    if accuracy:
        worst = min(run["right"] for run in accuracy["runs"])
        rights = ", ".join(f"{run['right']:.2%}" for run in accuracy["runs"])
        lines.append(
            f"| accuracy >= 99.5% ({accuracy['true_visits']} true visits, {accuracy['reads']} reads) | {rights} "
            f"(three arrival orders) | {'yes' if worst >= 0.995 else '**no**'} |"
        )
        lines.append(
            f"| the same day in three orders gives identical visits | "
            f"{'identical' if accuracy['orders_identical'] else str(accuracy['orders_differing_visits']) + ' visits differ'}"
            f" | {'yes' if accuracy['orders_identical'] else '**no**'} |"
        )
        lines.append(
            f"| occupancy exact at every minute of an undamaged day | {accuracy['occupancy_wrong_minutes']} of "
            f"{accuracy['occupancy_minutes']} minutes differ | {'yes' if accuracy['occupancy_wrong_minutes'] == 0 else '**no**'} |"
        )
    lag = results.get("lag")
    if lag:
        sites = lag["three sites"]
        lines.append(
            f"| cost: three sites <= 1.15x no sites (server + engine + MariaDB CPU per detection, {lag['rate']:g} det/s) | "
            f"{lag['cost_ratio']:.2f}x ({lag['no sites']['total_ms_per_det']:.2f} -> {sites['total_ms_per_det']:.2f} ms/det; "
            f"engine {sites['cpu_ms_per_det']['engine']:.2f}) | {'yes' if lag['cost_ratio'] <= 1.15 else '**no**'} |"
        )
        lines.append(
            f"| lag: a visit readable p99 < 1 s after its read's answer | p50 {sites['lag_p50_ms']:.0f} ms, "
            f"p99 {sites['lag_p99_ms']:.0f} ms, max {sites['lag_max_ms']:.0f} ms ({sites['lag_samples']} reads) | "
            f"{'yes' if sites['lag_p99_ms'] < 1000 else '**no**'} |"
        )
    reads = results.get("reads")
    if reads:
        for name, figures in reads["queries"].items():
            lines.append(
                f"| {name} at {reads['visits']:,} visits: median < 100 ms | median {figures['p50_ms']:.1f} ms, "
                f"p99 {figures['p99_ms']:.1f} ms | {'yes' if figures['p50_ms'] < 100 else '**no**'} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 vehicles and 100k visits")
    parser.add_argument("--parts", default="accuracy,reads,lag")
    parser.add_argument("--vehicles", type=int)
    parser.add_argument("--visits", type=int)
    parser.add_argument("--rate", type=float, default=60.0, help="lag and cost: reads a second (default 60)")
    parser.add_argument("--seconds", type=float, help="lag and cost: seconds per phase (default 60; 15 quick)")
    parser.add_argument("--no-save", action="store_true")
    options = parser.parse_args()
    parts = options.parts.split(",")
    stop_all_on_exit()
    workdir = Path(tempfile.mkdtemp(prefix="vm_bench_visits_"))
    (workdir / "media").mkdir()
    env = environment(workdir / "media")
    say(f"logs in {workdir}")
    recreate_database(env, workdir / "migrate.log")
    setup_django(env)
    results = {"started": datetime.now(UTC).isoformat(timespec="seconds")}
    if "accuracy" in parts:
        results["accuracy"] = run_accuracy(options.vehicles or (1_000 if options.quick else 10_000))
    if "lag" in parts:
        results["lag"] = run_lag(env, workdir, options.rate, options.seconds or (15 if options.quick else 60))
    if "reads" in parts:
        results["reads"] = run_reads(
            options.visits or (100_000 if options.quick else 1_000_000), env, workdir, 20 if options.quick else 50
        )
    text = table(results)
    print(text)
    if not options.no_save:
        RESULTS.mkdir(exist_ok=True)
        stem = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-visits{'-quick' if options.quick else ''}"
        stem.with_suffix(".md").write_text(f"# Visits benchmark, {results['started']}\n\n{text}\n")
        stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
        say(f"saved {stem}.md and .json")


if __name__ == "__main__":
    main()
