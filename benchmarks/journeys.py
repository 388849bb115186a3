"""The journey engine's targets (docs/journeys.md), as one command printing a table:

    .venv/bin/python benchmarks/journeys.py                       # the defaults below (~5 min)
    .venv/bin/python benchmarks/journeys.py --trips 200000        # the issue's week
    .venv/bin/python benchmarks/journeys.py --skip-exact --stored-reads 10000000
    .venv/bin/python benchmarks/journeys.py --parts cost --rate 150   # 20 routes' CPU per detection

- **Exact**: a generated week (20 cameras on a 4 x 5 grid of roads, `--trips` trips of 2-5
  cameras each, 5% of the reads arriving late, 1% misread by one character, 2% read twice, 0.5%
  deleted afterwards, 20 routes between neighbouring cameras) is written as detections and their
  events, the engine follows the log, and its journeys, transitions, matrix and travel times are
  compared with a brute-force computation of the contract's definitions over the same reads.
- **Reads**: the matrix for 20 cameras over a day of `--day-reads` reads, and a route's travel
  times for a week by 15 minutes (`--journeys` journeys), timed with `--stored-reads` reads
  stored in all (the day's plus older ones).
- **Cost** (`--parts cost`): the production server and `manage.py follow_journeys` as processes,
  reads posted at `--rate` a second (half of `s0-max`), with no route and then with 20 active
  routes; the server's, the engine's and MariaDB's CPU per detection, and their ratio.

It needs MariaDB on 127.0.0.1:3306 (root, empty password): it drops and creates the database
`vm_bench_journeys` (or `--database`), and touches no other; the cost part's processes use Redis
db 9 (as benchmarks/database.py's), with a channel prefix of their own.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "vm_bench_journeys"
WEEK_START = datetime(2026, 11, 16, tzinfo=UTC)
ROWS, COLUMNS = 4, 5
LETTERS = "ACDEFGHJKLMNPRTUVWXY"  # no look-alikes: a misread stays a misread


def setup_database(database: str):
    import MySQLdb

    connection = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="")
    cursor = connection.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {database}")
    cursor.execute(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
    connection.close()
    db_url = f"mysql://root:@127.0.0.1:3306/{database}"
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "vehicle_monitor.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update({"DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "vehicle_monitor.settings"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- The generated week --------------------------------------------------------------------


def neighbours(index: int) -> list[int]:
    row, column = divmod(index, COLUMNS)
    found = []
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        r, c = row + dr, column + dc
        if 0 <= r < ROWS and 0 <= c < COLUMNS:
            found.append(r * COLUMNS + c)
    return found


def plate_of(rng: random.Random) -> str:
    return f"{rng.randrange(1, 82):02}{''.join(rng.choice(LETTERS) for _ in range(3))}{rng.randrange(100, 1000)}"


def misread(rng: random.Random, plate: str) -> str:
    position = rng.randrange(len(plate))
    alphabet = "0123456789" if plate[position].isdigit() else LETTERS
    return plate[:position] + rng.choice([c for c in alphabet if c != plate[position]]) + plate[position + 1 :]


def generate(rng: random.Random, trips: int) -> list[tuple]:
    """Reads as (camera index, plate, time, tracking id), in arrival order."""
    vehicles = [plate_of(rng) for _ in range(max(1, trips // 4))]
    reads = []
    n = 0
    for _ in range(trips):
        plate = rng.choice(vehicles)
        at = WEEK_START + timedelta(seconds=rng.uniform(0, 7 * 86400))
        camera = rng.randrange(ROWS * COLUMNS)
        for hop in range(rng.randint(2, 5)):
            if hop:
                camera = rng.choice(neighbours(camera))
                at += timedelta(seconds=rng.uniform(60, 900))
            read_plate = misread(rng, plate) if rng.random() < 0.01 else plate
            n += 1
            reads.append((camera, read_plate, at, f"t{n}"))
            if rng.random() < 0.02:  # read twice by the same camera
                n += 1
                reads.append((camera, read_plate, at + timedelta(seconds=rng.uniform(1, 8)), f"t{n}"))
    reads.sort(key=lambda read: read[2])
    late = [read for read in reads if rng.random() < 0.05]
    late_ids = {read[3] for read in late}
    return [read for read in reads if read[3] not in late_ids] + late


def write_log(cameras, reads, rng) -> list[int]:
    """The reads as detections and their new_detection events, in arrival
    order, then 0.5% of them deleted (deletion events); the ids deleted."""
    from django.db import connection, transaction

    from detections.alerts.plates import normalize
    from detections.core import writes
    from detections.core.formats import format_time
    from detections.models import Detection, Event, EventKind, FeedState

    seq = 0
    batch = 5000
    ids = []
    for start in range(0, len(reads), batch):
        chunk = reads[start : start + batch]
        with transaction.atomic():
            rows = [
                Detection(
                    camera=cameras[camera],
                    tracking_id=tracking_id,
                    vehicle_type="car",
                    detected_at=at,
                    plate=plate,
                    plate_normalized=normalize(plate),
                )
                for camera, plate, at, tracking_id in chunk
            ]
            Detection.objects.bulk_create(rows)
            events = []
            for row in rows:
                seq += 1
                payload = {
                    "type": "new_detection",
                    "seq": seq,
                    "id": row.pk,
                    "tracking_id": row.tracking_id,
                    "vehicle_type": "car",
                    "camera": row.camera.name,
                    "time": format_time(row.detected_at),
                    "plate": row.plate,
                }
                events.append(
                    Event(
                        seq=seq,
                        kind=EventKind.NEW_DETECTION,
                        detection_id=row.pk,
                        camera=row.camera.name,
                        vehicle_type="car",
                        payload=payload,
                    )
                )
                ids.append(row.pk)
            Event.objects.bulk_create(events)
            FeedState.objects.update_or_create(pk=1, defaults={"last_seq": seq, "detection_count": len(ids)})
    deleted = rng.sample(ids, len(ids) // 200)
    # Through the one write module: the deletion events a staff member's deletions make.
    writes.detections_delete(Detection.objects.filter(pk__in=deleted))
    connection.close()
    return deleted


def make_routes(cameras, rng, count: int = 20):
    from detections.models import Route

    pairs = sorted({(a, b) for a in range(ROWS * COLUMNS) for b in neighbours(a)})
    chosen = rng.sample(pairs, count)
    return [
        Route.objects.create(
            name=f"r{a}-{b}",
            from_camera=cameras[a],
            to_camera=cameras[b],
            distance_m=rng.choice([800, 1500, 2400]),
            max_seconds=1800,
            speed_limit_kmh=50,
            repeat_seconds=60,
            since=WEEK_START - timedelta(days=1),
        )
        for a, b in chosen
    ]


def exactness(args) -> list[tuple[str, str, str]]:
    from detections.journeys import engine, pairing, queries, transitions
    from detections.models import Camera, Detection, Journey, Route

    rng = random.Random(args.seed)
    cameras = [Camera.objects.create(name=f"cam-{i:02}") for i in range(ROWS * COLUMNS)]
    engine.catch_up()  # the cursor, at the (empty) head: the engine follows the whole log
    make_routes(cameras, rng)
    engine.catch_up()
    reads = generate(rng, args.trips)
    started = time.perf_counter()
    write_log(cameras, reads, rng)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    if os.environ.get("JOURNEY_BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
        steps = profile.runcall(engine.catch_up)
        profile.dump_stats(os.environ["JOURNEY_BENCH_PROFILE"])
    else:
        steps = engine.catch_up()
    engine_seconds = time.perf_counter() - started
    stored = [
        pairing.Read(pk, vehicle, at, tracking_id, camera_id)
        for pk, vehicle, at, tracking_id, camera_id in Detection.objects.exclude(plate_normalized="").values_list(
            "pk", "plate_normalized", "detected_at", "tracking_id", "camera_id"
        )
    ]
    mismatches = []
    journeys = 0
    for route in Route.objects.all():
        covered = [r for r in stored if r.at >= route.covers_from]
        starts = [r for r in covered if r.camera_id == route.from_camera_id]
        ends = [r for r in covered if r.camera_id == route.to_camera_id]
        expected = pairing.pair(starts, ends, engine.rule_of(route))
        got = set(Journey.objects.filter(route=route).values_list("from_detection", "to_detection", "fuzzy"))
        if got != {(p.start.detection_id, p.end.detection_id, p.fuzzy) for p in expected}:
            mismatches.append(f"journeys of {route.name}")
        journeys += len(expected)
        # Travel times, brute force: nearest rank over each 15-minute bucket.
        buckets = defaultdict(list)
        for p in expected:
            buckets[queries.bucket_start(p.end.at, "15m", UTC)].append(p.seconds)
        brute = {
            t.isoformat(): (len(v), queries.nearest_rank(sorted(v), 50), queries.nearest_rank(sorted(v), 85))
            for t, v in buckets.items()
        }
        series = queries.travel_times(route, WEEK_START - timedelta(days=1), WEEK_START + timedelta(days=9), "15m", UTC)
        if {b["t"]: (b["count"], b["median_seconds"], b["p85_seconds"]) for b in series} != brute:
            mismatches.append(f"travel times of {route.name}")
    by_vehicle = defaultdict(list)
    for r in stored:
        by_vehicle[r.vehicle].append(r)
    expected_transitions = {}
    for vehicle_reads in by_vehicle.values():
        expected_transitions.update(transitions.derive(vehicle_reads))
    from detections.models import PlateRead

    got_transitions = {
        pk: transitions.Transition(repeat, from_camera, gap)
        for pk, repeat, from_camera, gap in PlateRead.objects.values_list(
            "pk", "repeat", "from_camera_id", "gap_seconds"
        )
    }
    if got_transitions != expected_transitions:
        mismatches.append("transitions")
    ids = [camera.pk for camera in cameras]
    for day in range(7):
        since, until = WEEK_START + timedelta(days=day), WEEK_START + timedelta(days=day + 1)
        if queries.od_matrix(ids, since, until, 1800) != transitions.count_matrix(
            stored, expected_transitions, ids, since, until, 1800
        ):
            mismatches.append(f"matrix of day {day}")
    return [
        (
            "exact: reads written (5% late, 1% misread, 2% double, 0.5% deleted)",
            f"{len(reads):,}",
            f"{load_seconds:.1f} s to write",
        ),
        (
            "exact: engine caught up (steps of 500 events)",
            f"{steps} steps",
            f"{engine_seconds:.1f} s, {len(reads) / engine_seconds:,.0f} reads/s",
        ),
        (
            "exact: journeys on 20 routes, equal to brute force",
            f"{journeys:,}",
            "yes" if not any("journeys" in m for m in mismatches) else "NO",
        ),
        (
            "exact: travel times (15 min, week) equal to brute force",
            "20 routes",
            "yes" if not any("travel" in m for m in mismatches) else "NO",
        ),
        (
            "exact: transitions equal to brute force",
            f"{len(expected_transitions):,}",
            "yes" if "transitions" not in mismatches else "NO",
        ),
        (
            "exact: matrix of each day equal to brute force",
            "7 days",
            "yes" if not any("matrix" in m for m in mismatches) else "NO",
        ),
    ]


# --- Cost ---------------------------------------------------------------------------------


def run_cost(database: str, rate: float, seconds: float) -> list[tuple[str, str, str]]:
    """The production server and `manage.py follow_journeys` as processes, reads
    posted at a steady `rate` (load.post_steadily: half a new vehicle at a
    random camera, half one seen before at another) with no route, then with
    20 active routes: every ordered pair of five cameras, so that every read
    after another camera's is a journey's end. Server + engine + MariaDB CPU
    per detection over the posting and until the engine has caught up."""
    import asyncio
    import logging
    import tempfile

    from bench_processes import PYTHON, CpuMeter, Server, process_tree, service_processes, start_process, stop_process
    from database import bench_env
    from django.db.models import F
    from load import post_steadily

    from detections.core.device_keys import issue_device_key
    from detections.models import Camera, FollowerCursor, Journey, Route, feed_head

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line a POST otherwise
    workdir = Path(tempfile.mkdtemp(prefix="vm_bench_journeys_"))
    (workdir / "media").mkdir()
    env = {
        **bench_env(workdir / "media"),
        "DATABASE_URL": f"mysql://root:@127.0.0.1:3306/{database}",
        "CHANNEL_LAYER_PREFIX": f"{database}_",
    }
    cameras = [Camera.objects.get_or_create(name=f"cost-{n}")[0] for n in range(5)]
    _, key = issue_device_key(cameras=cameras, label="journey bench")
    server = Server("uvicorn", 1, env, workdir / "server.log", [])
    engine = start_process([PYTHON, "manage.py", "follow_journeys"], env=env, log_path=workdir / "engine.log")
    meter = CpuMeter(
        {
            "server": server.all_processes,
            "engine": lambda: process_tree(engine.pid),
            "db": lambda: service_processes("mariadbd", "mysqld"),
        }
    )
    threads = DatabaseThreads(database)
    per_detection = {}
    try:
        for phase in ("no routes", "20 routes"):
            if phase == "20 routes":
                for a in cameras:
                    for b in cameras:
                        if a != b:
                            Route.objects.create(
                                name=f"cost {a.name}-{b.name}", from_camera=a, to_camera=b, distance_m=800
                            )
                _wait_caught_up(lambda: not Route.objects.exclude(derived_revision=F("revision")).exists())
            before, serving = meter.snapshot(), threads.snapshot()
            posting = time.monotonic()
            answered = asyncio.run(post_steadily(server.urls[0], key, [c.name for c in cameras], rate, seconds, phase))
            posting = time.monotonic() - posting
            _wait_caught_up(lambda: FollowerCursor.objects.filter(name="journeys", position__gte=feed_head()).exists())
            after = meter.snapshot()
            used = {**CpuMeter.seconds(before, after), "db (ours)": threads.seconds_since(serving)}
            wall = after["_t"] - before["_t"]
            machine = 100 * (after["machine"] - before["machine"]) / wall
            per_detection[phase] = (
                len(answered),
                {group: used[group] * 1000 / len(answered) for group in used},
                machine,
                len(answered) / posting,
            )
    finally:
        server.stop()
        stop_process(engine)
    journeys = Journey.objects.filter(route__name__startswith="cost ").count()
    (n0, none, busy0, rate0), (n20, routes, busy20, rate20) = per_detection["no routes"], per_detection["20 routes"]

    def ours(figures):  # server + engine + the MariaDB threads serving them
        return figures["server"] + figures["engine"] + figures["db (ours)"]

    def whole(figures):  # ... + all of MariaDB, whoever else it serves meanwhile
        return figures["server"] + figures["engine"] + figures["db"]

    def split(figures):
        return ", ".join(f"{group} {ms:.2f}" for group, ms in figures.items())

    ratio = ours(routes) / ours(none)

    return [
        (
            f"cost: no route, {rate:g} det/s asked for {seconds:g} s (machine {busy0:.0f}% busy)",
            f"{n0:,} reads ({rate0:.0f}/s answered)",
            f"{ours(none):.2f} ms CPU/det ({split(none)}; with all of MariaDB {whole(none):.2f})",
        ),
        (
            f"cost: 20 active routes (machine {busy20:.0f}% busy)",
            f"{n20:,} reads ({rate20:.0f}/s answered), {journeys:,} journeys",
            f"{ours(routes):.2f} ms CPU/det ({split(routes)}; with all of MariaDB {whole(routes):.2f})",
        ),
        (
            "cost: 20 routes / none, server + engine + their MariaDB threads (target <= 1.15x)",
            "",
            f"{ratio:.2f}x"
            + ("" if ratio <= 1.15 else " (a miss)")
            + f"; with all of MariaDB {whole(routes) / whole(none):.2f}x",
        ),
    ]


class DatabaseThreads:
    """MariaDB's CPU on behalf of one database: the OS threads serving its
    connections (information_schema.PROCESSLIST's TID, one thread a connection),
    except this process's own. MariaDB's whole process also counts every other
    client's work, and other sessions' tests share it on this machine."""

    def __init__(self, database: str):
        from bench_processes import service_processes

        self.database = database
        self.mariadb = service_processes("mariadbd", "mysqld")[0]

    def _times(self) -> dict[int, float]:
        return {thread.id: thread.user_time + thread.system_time for thread in self.mariadb.threads()}

    def _serving(self) -> set[int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT TID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                [self.database],
            )
            return {tid for (tid,) in cursor.fetchall()}

    def snapshot(self):
        return self._times(), self._serving()

    def seconds_since(self, snapshot) -> float:
        """CPU seconds since `snapshot` of the threads serving the database then
        or now (a thread new since then counts from zero)."""
        before, serving = snapshot
        after = self._times()
        return sum(after.get(tid, 0.0) - before.get(tid, 0.0) for tid in serving | self._serving())


def _wait_caught_up(done, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the engine did not catch up within {timeout:.0f} s")
        time.sleep(0.2)


# --- Read timings --------------------------------------------------------------------------


def load_reads(total: int, day_reads: int, cameras, rng) -> None:
    """`total` plate reads with their transitions straight into the engine's
    table, `day_reads` of them on the measured day, the rest on earlier days."""
    from django.db import connection

    from detections.journeys.models import PlateRead

    day = WEEK_START + timedelta(days=6)
    vehicles = [plate_of(rng) for _ in range(max(1, day_reads // 5))]
    last = {}
    table = PlateRead._meta.db_table
    columns = "(detection_id, vehicle, plate, camera_id, vehicle_type, tracking_id, detected_at, `repeat`, from_camera_id, gap_seconds)"
    pk = 0
    batch = []

    def flush():
        if not batch:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} {columns} VALUES " + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(batch)),
                [value for row in batch for value in row],
            )
        batch.clear()

    older = total - day_reads
    for n in range(total):
        if n < older:
            at = day - timedelta(days=1) - timedelta(seconds=(older - n) * (300 * 86400 / max(1, older)))
        else:
            at = day + timedelta(seconds=(n - older) * 86400 / day_reads)
        vehicle = rng.choice(vehicles)
        camera = rng.choice(cameras)
        previous = last.get(vehicle)
        last[vehicle] = (camera, at)
        gap = (at - previous[1]).total_seconds() if previous else None
        pk += 1
        batch.append(
            (
                pk,
                vehicle,
                vehicle,
                camera,
                "car",
                f"t{pk}",
                at.replace(tzinfo=None),
                0,
                previous[0] if previous else None,
                gap,
            )
        )
        if len(batch) == 5000:
            flush()
    flush()
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {table}")


def load_journeys(route, count: int, rng) -> None:
    from detections.models import Journey

    journeys = []
    for n in range(count):
        ended = WEEK_START + timedelta(seconds=n * 7 * 86400 / count)
        seconds = rng.uniform(90, 400)
        journeys.append(
            Journey(
                route=route,
                plate="x",
                vehicle="x",
                from_detection=n,
                to_detection=10**9 + n,
                started_at=ended - timedelta(seconds=seconds),
                ended_at=ended,
                seconds=seconds,
                speed_kmh=2400 * 3.6 / seconds,
            )
        )
    Journey.objects.bulk_create(journeys, batch_size=5000)


def timed(function, repeat: int = 5) -> float:
    function()  # warm the buffer pool as a served request would find it
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def read_timings(args) -> list[tuple[str, str, str]]:
    from detections.journeys import queries
    from detections.models import Camera, Journey, PlateRead, Route

    rng = random.Random(args.seed + 1)
    PlateRead.objects.all().delete()
    Journey.objects.all().delete()
    cameras = list(Camera.objects.values_list("pk", flat=True)[:20])
    started = time.perf_counter()
    load_reads(args.stored_reads, args.day_reads, cameras, rng)
    loaded = time.perf_counter() - started
    route = Route.objects.exclude(name__startswith="cost ").first()
    load_journeys(route, args.journeys, rng)
    day = WEEK_START + timedelta(days=6)
    matrix = timed(lambda: queries.od_matrix(cameras, day, day + timedelta(days=1), 1800))
    travel = timed(lambda: queries.travel_times(route, WEEK_START, WEEK_START + timedelta(days=7), "15m", UTC))
    return [
        (f"reads: {args.stored_reads:,} reads stored ({args.day_reads:,} on the day)", "", f"{loaded:.0f} s to load"),
        ("reads: matrix, 20 cameras, one day (target < 3 s)", f"{args.day_reads:,} reads", f"{matrix:.3f} s"),
        (
            "reads: travel times, a week by 15 min (target < 0.2 s)",
            f"{args.journeys:,} journeys",
            f"{travel * 1000:.0f} ms",
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=20000, help="trips in the generated week (the issue: 200000)")
    parser.add_argument("--day-reads", type=int, default=1_000_000, help="reads on the day the matrix counts")
    parser.add_argument("--stored-reads", type=int, default=1_000_000, help="reads stored in all (>= --day-reads)")
    parser.add_argument("--journeys", type=int, default=100_000, help="journeys in the week of travel times")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--parts", default="exact,reads", help="any of exact,reads,cost")
    parser.add_argument("--skip-exact", action="store_true", help="the same as --parts reads")
    parser.add_argument("--rate", type=float, default=150.0, help="cost: reads a second (half of s0-max)")
    parser.add_argument("--seconds", type=float, default=60.0, help="cost: seconds per phase")
    parser.add_argument("--database", default=DATABASE, help="the database dropped and made again")
    args = parser.parse_args()
    if args.stored_reads < args.day_reads:
        parser.error("--stored-reads must be at least --day-reads")
    parts = ["reads"] if args.skip_exact else args.parts.split(",")
    setup_database(args.database)
    rows = []
    if "exact" in parts:
        rows += exactness(args)
    else:
        from detections.models import Camera, Route

        cameras = [Camera.objects.create(name=f"cam-{i:02}") for i in range(ROWS * COLUMNS)]
        Route.objects.create(name="r", from_camera=cameras[0], to_camera=cameras[1], distance_m=2400)
    if "cost" in parts:
        rows += run_cost(args.database, args.rate, args.seconds)
    if "reads" in parts:
        rows += read_timings(args)
    width = max(len(row[0]) for row in rows)
    print(f"\n| {'what'.ljust(width)} | size | result |\n|{'-' * (width + 2)}|---|---|")
    for what, size, result in rows:
        print(f"| {what.ljust(width)} | {size} | {result} |")


if __name__ == "__main__":
    main()
