"""Load and latency benchmark of vehicle_monitor: one command, one table.

    .venv/bin/python benchmarks/run.py [--quick] [--server uvicorn|granian|daphne] [--workers N]
                                       [--rows ROW,ROW,...] [--profile ROW]

Starts the service as real server processes on MariaDB (database `vm_bench`,
recreated) and Redis (db 9), drives it with load-generator processes
(benchmarks/loadgen.py: aiohttp over real HTTP and real WebSocket), prints a
markdown table and writes it to benchmarks/results/. See benchmarks/README.md.

Every process it starts runs in a process group of its own and is ended by that
group's id, on success, error or Ctrl-C; nothing else on the machine is touched.
"""

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_processes import (
    BENCH,
    PYTHON,
    ROOT,
    SERVER_COMMANDS,
    CpuMeter,
    Server,
    production_command,
    say,
    service_pids,
    service_processes,
    stop_all,
    stop_all_on_exit,
    tail,
    wait_for_quiet,
)
from database import (
    DB_NAME,
    bench_env,
    bulk_load,
    flush_redis_db9,
    make_credentials,
    recreate_database,
    wait_for_services,
)
from load import ROWS, Gen, Load
from measures import idle_record, pct, post_record, stats_record
from profiling import Profiler
from report import app_version, format_brief, raw_numbers, report, save


class Bench:
    """One run: the database for each table size, the server's lifecycle, and the rows in order."""

    def __init__(self, options):
        self.o = options
        self.quick = options.quick
        self.big_rows = options.big_rows or (100_000 if self.quick else 1_000_000)
        self.duration = options.duration or (4.0 if self.quick else 20.0)
        self.workdir = Path(tempfile.mkdtemp(prefix="vm_bench_"))
        self.media = self.workdir / "media"
        self.media.mkdir()
        self.env = bench_env(self.media)
        self.log = self.workdir / "server.log"
        self.genlog = self.workdir / "loadgen.log"
        self.auth_path = self.workdir / "auth.json"
        self.results: dict[str, dict] = {}
        self.app_versions: list[str] = []
        self.server: Server | None = None
        self.row_counter = 0
        self.tag = f"{random.randrange(36**4):04x}"
        self.load = Load(options, self.workdir, self.auth_path, self.genlog, self.duration)
        self.hooks = None  # the hooks rows' endpoints, receiver and worker while one runs
        self.cpu = CpuMeter(
            {
                "server": lambda: self.server.all_processes() if self.server else [],
                "gen": self.load.processes,
                "db": lambda: service_processes("mariadbd", "mysqld"),
                "redis": lambda: service_processes("redis-server"),
                "worker": lambda: self.hooks.processes("worker") if self.hooks else [],
                "receiver": lambda: self.hooks.processes("receiver") if self.hooks else [],
            }
        )
        extra = "".join(ch if ch.isalnum() else "-" for ch in " ".join(options.server_arg or [])).strip("-")
        self.label = (
            options.server
            + (f"-w{options.workers}" if options.workers > 1 else "")
            + (f"-{extra}" if extra else "")
            + ("-quick" if self.quick else "")
        )

    # Server lifecycle

    def start_server(self, warm=True):
        flush_redis_db9()
        version = f"app {app_version()}"
        if version not in self.app_versions:
            self.app_versions.append(version)
        extra = list(self.o.server_arg or [])
        self.server = Server(self.o.server, self.o.workers, self.env, self.log, extra)
        say(f"{self.o.server} up on {', '.join(self.server.urls)} (pids {self.server.worker_pids()})")
        if warm:
            self.warm_up()

    def warm_up(self):
        """Imports, connections, the thread pool: not measured."""
        urls = self.server.urls
        self.load.run_poster(urls, "post", {"concurrency": 8}, duration=3 if self.quick else 5, prefix=f"w{self.tag}")
        self.load.run_poster(urls, "stats", {}, requests=30, prefix="warm")
        time.sleep(1)

    def stop_server(self):
        if self.server:
            self.server.stop()
            self.server = None

    # Rows

    def next_prefix(self) -> str:
        self.row_counter += 1
        return f"b{self.tag}{self.row_counter:02d}"

    def wait_for_services_and_quiet(self):
        """MariaDB and Redis answering, and the machine not busy with anything else, before a row starts."""
        wait_for_services()
        wait_for_quiet(self.cpu, self.o.wait_quiet)

    def run_row_undisturbed(self, row_id: str) -> dict:
        """Run a row; run it again (twice at most) when MariaDB or Redis restarted
        meanwhile (other sessions' outage tests stop and start them)."""
        for attempt in range(3):
            before = service_pids()
            result = self.run_row(row_id)
            if service_pids() == before and len(before) == 2:
                return result
            result["disturbed"] = True
            say("MariaDB or Redis restarted during the row (not by us)" + ("; running it again" if attempt < 2 else ""))
            time.sleep(5)
        return result

    def run_row(self, row_id: str):
        title, phase, kind, params = ROWS[row_id]
        self.wait_for_services_and_quiet()
        say(f"row {row_id}: {title.format(big=self.big_label)}")
        if kind == "idle":
            return self.row_idle()
        if kind == "stats":
            return self.row_stats()
        if kind == "watch-match":
            return self.row_watch_match()
        if kind == "plate-like":
            return self.row_plate_like()
        if params.get("watch"):
            return self.row_watch(row_id, params)
        if params.get("hooks"):
            return self.row_hooks(row_id, params)
        return self.row_post(row_id, kind, params)

    def row_post(self, row_id: str, kind: str, params: dict, *, prefix=None, plates=None) -> dict:
        urls = self.server.urls
        prefix = prefix or self.next_prefix()
        profiler = None
        listeners = self.load.open_listeners(urls, params["sockets"], prefix) if params.get("sockets") else []
        try:
            self.load.arm_listeners(listeners, prefix)
            if self.o.profile and row_id in self.o.profile:
                profiler = Profiler(
                    self.server.worker_pids()[0], f"{self.label}-{row_id}", self.duration, self.workdir / "py-spy.log"
                )
            # Cpu snapshots bracket the poster's run (the poster's own CPU it reports itself).
            mode = "batch" if kind == "batch" else "post"
            result = self.load.run_poster(urls, mode, params, prefix=prefix, cpu=self.cpu, plates=plates)
            delivery = {}
            if listeners:
                drain_seconds = 10.0 if self.quick else 30.0
                delivery = self.load.drain_listeners(listeners, result["created"], drain_seconds)
        finally:
            if profiler:
                profiler.stop()
            self.load.close_listeners(listeners)
        return post_record(result, delivery, db_connections=self.server.db_connections(), sockets=params.get("sockets"))

    def untimed_posts(self, seconds: float, concurrency=8):
        """A few seconds of ingest that is not measured: the server picks up a new
        configuration revision (lists, endpoints) at its next request."""
        self.load.run_poster(
            self.server.urls, "post", {"concurrency": concurrency}, duration=seconds, prefix=f"w{self.tag}x"
        )

    def row_watch_match(self) -> dict:
        """In a process of its own, no server involved (watch_match.py)."""
        out = subprocess.run(
            [PYTHON, str(BENCH / "watch_match.py")],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"watch_match.py failed:\n{out.stderr[-2000:]}")
        return {"watch_match": json.loads(out.stdout.strip().splitlines()[-1])}

    def row_watch(self, row_id: str, params: dict) -> dict:
        """100k watched plates and 5 rules loaded into vm_bench, the posters sending
        plates of which 1% are listed; the alerts counted afterwards."""
        import watch

        rng = random.Random()
        lists = watch.draw_lists(rng)
        built = watch.indexes(lists)
        # Longer than any row posts: each listed plate is sent once (no cooldown holds one back).
        sequence, matching = watch.draw_sequence(lists, built, 40_000 if self.quick else 100_000, rng)
        plates = self.workdir / "plates.json"
        plates.write_text(json.dumps(sequence))
        del built
        prefix = self.next_prefix()
        loaded = watch.load_into_database(lists)
        say(
            f"{loaded['entries']} watched plates, {loaded['rules']} rules inserted in {loaded['insert_seconds']:.1f} s; "
            f"config.load() {loaded['config_load_seconds']:.2f} s"
        )
        try:
            rss_before = self.server.rss()
            self.untimed_posts(3)
            time.sleep(1)
            rss_after = self.server.rss()
            record = self.row_post(row_id, "post", params, prefix=prefix, plates=plates)
            record["watch"] = {
                **loaded,
                **watch.count_alerts(prefix + "-", matching),
                "server_rss_delta_mb": (rss_after - rss_before) / 2**20,
            }
        finally:
            watch.remove_from_database()
        return record

    def row_hooks(self, row_id: str, params: dict) -> dict:
        """Ingest with webhook endpoints, their worker and a receiver; what arrived, and when."""
        from hooks import Webhooks

        self.hooks = Webhooks(
            params["hooks"],
            self.env,
            self.workdir,
            self.workdir / "webhooks.log",
            lambda args, script: Gen(args, self.genlog, script),
        )
        try:
            # The endpoints into the server's snapshot and the worker's connections
            # made, before anything is timed.
            self.untimed_posts(2, concurrency=2)
            self.hooks.wait_delivered(0, timeout=60)
            after_id = self.hooks.watermark()
            self.hooks.reset_receiver()
            worker_before = self.cpu.snapshot()
            record = self.row_post(row_id, "post", params)
            drained = self.hooks.wait_delivered(after_id, timeout=30 if self.quick else 120)
            worker_used = CpuMeter.seconds(worker_before, self.cpu.snapshot())
            arrivals = self.hooks.arrivals(after_id)
        finally:
            self.hooks.close()
            self.hooks = None
        record.update(
            {
                "missing": arrivals["hook_missing"],
                "delivery_p50": arrivals["delivery_p50"],
                "delivery_p99": arrivals["delivery_p99"],
                "delivery_max": arrivals["delivery_max"],
                "hooks": {
                    **arrivals,
                    **drained,
                    "endpoints": params["hooks"],
                    # Over the row and its drain: the worker's whole cost for these messages.
                    "worker_cpu_seconds": worker_used["worker"],
                    "receiver_cpu_seconds": worker_used["receiver"],
                },
            }
        )
        return record

    def row_plate_like(self) -> dict:
        """GET /api/detections/?plate_like= on the big table, plates that exist and
        plates that do not, max_edits 0 and 1, in turn; latencies split by kind."""
        from detections.simulation.camera import random_plate

        rng = random.Random(7)
        each = 100 if self.quick else 500  # per (max_edits, exists) pair
        kinds = [(edits, exists) for edits in (0, 1) for exists in (True, False)]
        paths, kind_of = [], []
        for _ in range(each):
            for edits, exists in kinds:
                if exists:
                    s = rng.randrange(1, self.big_rows + 1)
                    plate = f"{1 + s % 81:02d}BLK{s % 1000:03d}"  # database.bulk_load's plates
                else:
                    plate = random_plate(rng)
                paths.append(f"/api/detections/?plate_like={plate}&max_edits={edits}")
                kind_of.append((edits, exists))
        found = self.plate_like_results(paths[: len(kinds)])
        path_file = self.workdir / "plate-like-paths.json"
        path_file.write_text(json.dumps(paths))
        result = self.load.run_poster(
            self.server.urls,
            "stats",
            {},
            requests=len(paths),
            duration=300,
            prefix="plate",
            cpu=self.cpu,
            paths=path_file,
        )
        by_kind: dict[str, list[float]] = {}
        for ms, (edits, exists) in zip(result["in_order"], kind_of, strict=False):
            by_kind.setdefault(f"{edits}-{'exists' if exists else 'missing'}", []).append(ms)
            by_kind.setdefault(str(edits), []).append(ms)
        record = stats_record(result)
        record["plate_like"] = {
            key: {"p50": pct(sorted(v), 0.5), "p99": pct(sorted(v), 0.99), "n": len(v)} for key, v in by_kind.items()
        }
        record["plate_like_found"] = found
        return record

    def plate_like_results(self, paths: list[str]) -> list[int]:
        """How many detections the first page of each answer holds (a plate that
        exists must find some), asked once before timing."""
        auth = json.loads(self.auth_path.read_text())
        counts = []
        for path in paths:
            request = urllib.request.Request(
                self.server.urls[0] + path, headers={"Authorization": f"Token {auth['viewer_token']}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                counts.append(len(json.loads(response.read())["results"]))
        return counts

    def row_idle(self):
        # On a fresh server: memory freed by earlier rows (kept by the allocator)
        # would hide what sockets take. The first 200 sockets absorb what the first
        # socket initialises once; the next 1000 are measured.
        sockets = 1000
        self.stop_server()
        self.start_server(warm=False)
        first = self.load.open_listeners(self.server.urls, 200, "idle")
        gens = []
        try:
            time.sleep(3)
            before = self.server.rss()
            gens = self.load.open_listeners(self.server.urls, sockets, "idle")
            time.sleep(3)
            after = self.server.rss()
            connected = self.load.listen_info["connected"]
        finally:
            self.load.close_listeners(gens + first)
        self.warm_up()
        return idle_record(before, after, connected, self.load.listen_info["deflate"])

    def row_stats(self):
        requests = 200 if self.quick else 1000
        result = self.load.run_poster(self.server.urls, "stats", {}, requests=requests, prefix="stats", cpu=self.cpu)
        return stats_record(result)

    # The run

    def run(self):
        rows = self.o.rows or list(ROWS)
        unknown = [r for r in rows if r not in ROWS]
        if unknown:
            raise SystemExit(f"unknown rows: {unknown}; known: {', '.join(ROWS)}")
        self.big_label = f"{self.big_rows // 1000}k" if self.big_rows < 10**6 else f"{self.big_rows / 10**6:g}M"
        self.load.draw_pools(self.env)
        self.notes_setup = []
        for phase, size in (("small", 1000), ("big", self.big_rows)):
            phase_rows = [r for r in ROWS if r in rows and ROWS[r][1] == phase]
            if not phase_rows:
                continue
            for attempt in range(3):
                # Others' outage tests may stop MariaDB in the middle: try again.
                self.wait_for_services_and_quiet()
                say(f"database {DB_NAME}: recreate, migrate, bulk-load {size} rows")
                try:
                    recreate_database(self.env, self.log)
                    make_credentials(self.env, self.auth_path)
                    seconds = bulk_load(size, self.env, self.log)
                    break
                except Exception as exc:
                    if attempt == 2:
                        raise
                    say(f"setting up the database failed ({str(exc)[:200]}); again")
                    time.sleep(10)
            say(f"bulk-loaded {size} rows and rebuilt the counters in {seconds:.0f} s")
            self.notes_setup.append(f"{size} rows bulk-loaded in {seconds:.0f} s")
            self.start_server()
            try:
                for row_id in phase_rows:
                    try:
                        self.results[row_id] = self.run_row_undisturbed(row_id)
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:  # one broken row must not lose the others
                        self.results[row_id] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                        say(f"  row {row_id} failed: {exc}\n{tail(self.log, 10)}")
                        self.load.stop_listeners()
                        # A fresh server for the next row: this one may have died, or (seen
                        # with uvicorn after the steady-rate rows) still hold every MySQL
                        # connection the server allows, so that nothing else can connect.
                        connections = self.server.db_connections() if self.server else 0
                        say(f"server holds {connections} MySQL connections; starting it again")
                        self.stop_server()
                        self.start_server()
                        continue
                    say(f"  -> {format_brief(self.results[row_id])}")
                    if self.results[row_id].get("missing"):
                        # Undelivered events are still queued in the server: the next row
                        # would pay for them. Start it on a fresh server.
                        say("events still undelivered: restarting the server for the next row")
                        self.stop_server()
                        self.start_server()
            finally:
                self.stop_server()
                shutil.rmtree(self.media, ignore_errors=True)
                self.media.mkdir(exist_ok=True)
        return self.report(rows)

    def report(self, rows) -> str:
        return report(
            self.results,
            rows,
            label=self.label,
            big_label=self.big_label,
            duration=self.duration,
            setup_notes=self.notes_setup,
            app_versions=self.app_versions,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few seconds per row, 100k rows instead of 1M")
    parser.add_argument(
        "--rows", type=lambda s: [x for x in s.split(",") if x], help=f"comma-separated, of: {', '.join(ROWS)}"
    )
    parser.add_argument(
        "--server",
        choices=["daphne", *SERVER_COMMANDS],
        default=production_command()[0],
        help="default: the one docker-compose.yml's web service runs",
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (daphne: one port each)")
    parser.add_argument("--server-arg", action="append", help="one more argument for the server command line")
    parser.add_argument("--duration", type=float, help="seconds per ingest row (default 20, --quick 4)")
    parser.add_argument("--big-rows", type=int, help="rows in the big table (default 1M, --quick 100k)")
    parser.add_argument("--sockets-per-process", type=int, default=500, help="listener sockets per generator process")
    parser.add_argument("--ws-client", choices=["aiohttp", "websockets"], default="aiohttp")
    parser.add_argument(
        "--no-deflate", dest="deflate", action="store_false", help="listeners do not offer permessage-deflate"
    )
    parser.add_argument(
        "--profile", type=lambda s: s.split(","), help="rows to record with py-spy (server's first worker)"
    )
    parser.add_argument("--no-save", action="store_true", help="print the table only")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        help="seconds to wait, before each row, for other processes to go quiet (0: do not wait)",
    )
    options = parser.parse_args()

    stop_all_on_exit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    bench = Bench(options)
    try:
        table = bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything this run started", file=sys.stderr)
        stop_all()
        if bench.results:
            print(bench.report(options.rows or list(ROWS)))
            print(json.dumps(raw_numbers(bench.results), default=str))
        return 130
    except BaseException:
        stop_all()
        shutil.rmtree(bench.media, ignore_errors=True)
        if bench.results:
            print(bench.report(options.rows or list(ROWS)))
        print(
            f"failed; logs kept in {bench.workdir}:\n--- server.log\n{tail(bench.log)}\n--- loadgen.log\n{tail(bench.genlog)}",
            file=sys.stderr,
        )
        raise
    stop_all()
    shutil.rmtree(bench.media, ignore_errors=True)
    for leftover in bench.workdir.glob("*.bin"):
        leftover.unlink()
    print()
    print(table)
    if not options.no_save:
        print(f"written to {save(table, bench.results, bench.label)}")
    print(f"server and generator logs: {bench.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
