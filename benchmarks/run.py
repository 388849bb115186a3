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
import atexit
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from datetime import UTC, datetime
from pathlib import Path

import psutil
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent

DB_NAME = "vm_bench"
DB_URL = f"mysql://root:@127.0.0.1:3306/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/9"
CAMERAS = ["gate-1", "gate-2", "gate-3", "gate-4"]
APP = "vehicle_monitor.asgi:application"
OPEN_FILES = 20000

# --- Rows ------------------------------------------------------------------------------------

# id: (title, phase, kind, parameters). Phase "small" runs on a table bulk-loaded
# with 1k rows, phase "big" on one with 1M (100k with --quick).
ROWS = {
    "idle": ("Idle sockets: RSS per socket", "small", "idle", {}),
    "stats-1k": ("GET /api/stats, 1k rows", "small", "stats", {}),
    "ingest-1k": ("Ingest, 1k rows, 8 posters", "small", "post", {"sockets": 0, "concurrency": 8}),
    "s0-max": ("Ingest, 0 sockets, 8 posters", "small", "post", {"sockets": 0, "concurrency": 8}),
    "s0-rate": ("Ingest, 0 sockets, steady 300/s", "small", "post", {"sockets": 0, "rate": 300}),
    "s100-max": ("Ingest, 100 sockets, 8 posters", "small", "post", {"sockets": 100, "concurrency": 8}),
    "s100-rate": ("Ingest, 100 sockets, steady 100/s", "small", "post", {"sockets": 100, "rate": 100}),
    "s1000-max": ("Ingest, 1000 sockets, 8 posters", "small", "post", {"sockets": 1000, "concurrency": 8}),
    "s1000-rate": ("Ingest, 1000 sockets, steady 10/s", "small", "post", {"sockets": 1000, "rate": 10}),
    "batch": ("Batch ingest, 100 x 160x120 per POST, 2 posters", "small", "batch", {"concurrency": 2}),
    "stats-1m": ("GET /api/stats, {big} rows", "big", "stats", {}),
    "ingest-1m": ("Ingest, {big} rows, 8 posters", "big", "post", {"sockets": 0, "concurrency": 8}),
}


def target_check(row_id: str, r: dict, results: dict) -> tuple[str, bool | None]:
    """The row's target, and whether the measurement meets it."""
    dps, p99, d99, missing = r.get("dps"), r.get("post_p99"), r.get("delivery_p99"), r.get("missing")
    server_ms = r.get("cpu_ms_per_det", {}).get("server")
    none_missing = missing == 0
    if row_id == "s0-max":
        return (
            "server CPU <= 3.5 ms/det, >= 280/s, POST p99 < 50 ms",
            server_ms is not None and server_ms <= 3.5 and dps >= 280 and p99 < 50,
        )
    if row_id == "s0-rate":
        return "300/s held, POST p99 < 15 ms", dps >= 0.97 * 300 and p99 < 15
    if row_id == "s100-max":
        return (
            ">= 110/s, delivery p99 < 150 ms, none missing",
            dps >= 110 and d99 is not None and d99 < 150 and none_missing,
        )
    if row_id == "s100-rate":
        return (
            "100/s held, delivery p99 < 30 ms, none missing",
            dps >= 97 and d99 is not None and d99 < 30 and none_missing,
        )
    if row_id == "s1000-rate":
        return (
            "10/s held, delivery p99 < 250 ms, none missing",
            dps >= 9.7 and d99 is not None and d99 < 250 and none_missing,
        )
    if row_id == "s1000-max":
        return "(no target) none missing", none_missing
    if row_id == "ingest-1m":
        base = results.get("ingest-1k", {}).get("dps") or results.get("s0-max", {}).get("dps")
        if not base:
            return ">= 90% of the 1k-row figure", None
        return f">= 90% of 1k ({0.9 * base:.0f}/s)", dps >= 0.9 * base
    if row_id == "ingest-1k":
        return "(reference for the big table)", None
    if row_id in ("stats-1k", "stats-1m"):
        return "p99 < 50 ms", p99 < 50
    if row_id == "batch":
        return "server CPU <= 1 ms/item, >= 1500/s", server_ms is not None and server_ms <= 1 and dps >= 1500
    if row_id == "idle":
        return "< 50 KB per socket", r["kb_per_socket"] < 50
    return "", None


# --- Processes we start -------------------------------------------------------------------------

STARTED: list[subprocess.Popen] = []


def start_process(args, *, log_path=None, env=None, stdin=None, stdout=None, cwd=ROOT) -> subprocess.Popen:
    """Start a child in a process group of its own (its id is the child's pid)."""

    def prepare():
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))

    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=stdout if stdout is not None else log,
        stderr=log,
        start_new_session=True,
        preexec_fn=prepare,
    )
    STARTED.append(process)
    return process


def stop_process(process: subprocess.Popen, timeout=15):
    """End one child we started, and its group (a server's workers; py-spy's target is not ours)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    else:
        # The leader is gone; make sure nothing of its group survives it.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if process in STARTED:
        STARTED.remove(process)


def stop_all():
    for process in list(reversed(STARTED)):
        stop_process(process, timeout=10)


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --- Services -------------------------------------------------------------------------------


def mysql(sql: str, database: str | None = None, *, fetch=False):
    import MySQLdb

    connection = MySQLdb.connect(
        host="127.0.0.1", port=3306, user="root", passwd="", db=database or "", charset="utf8mb4"
    )
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall() if fetch else None
        connection.commit()
        return rows
    finally:
        connection.close()


def bench_env(media_root: Path) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vehicle_monitor.settings",
        "DATABASE_URL": DB_URL,
        "REDIS_URL": REDIS_URL,
        "CHANNEL_LAYER_PREFIX": "vm_bench",
        "MEDIA_ROOT": str(media_root),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        # Plain HTTP on loopback: no redirect to https (production sits behind a TLS proxy).
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        # The per-device limit (default 50/s) is lifted: the benchmark measures capacity.
        # The throttle still runs, and costs its cache round trips, on every request.
        "DEVICE_RATE_LIMIT": "100000000/s",
        "PYTHONUNBUFFERED": "1",
    }


def manage(env, *args, log_path):
    process = start_process([PYTHON, "manage.py", *args], env=env, log_path=log_path)
    code = process.wait()
    STARTED.remove(process)
    if code != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({code}); see {log_path}")


def recreate_database(env, log_path):
    assert DB_NAME == "vm_bench"  # never any other database
    mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    mysql(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    manage(env, "migrate", "--noinput", "-v", "0", log_path=log_path)


# 20 slots of vehicle types, weighted like the simulator's traffic mix.
TYPE_SLOTS = ["car"] * 12 + ["van"] * 2 + ["truck"] * 2 + ["motorcycle"] * 2 + ["bus", "bicycle"]


def bulk_load(rows: int, env, log_path) -> float:
    """Insert `rows` detections straight into the table (INSERT ... SELECT from a
    sequence), spread over the past year, then rebuild the counters."""
    started = time.monotonic()
    for name in CAMERAS:
        mysql(
            f"INSERT IGNORE INTO detections_camera (name, description, created_at) VALUES ('{name}', '', NOW(6))",
            DB_NAME,
        )
    ids = [r[0] for r in mysql("SELECT id FROM detections_camera ORDER BY name", DB_NAME, fetch=True)]
    camera_sql = "ELT(1 + s.seq % {n}, {ids})".format(n=len(ids), ids=", ".join(map(str, ids)))
    type_sql = "ELT(1 + (s.seq * 7919) % 20, {})".format(", ".join(f"'{t}'" for t in TYPE_SLOTS))
    year_us = 365 * 24 * 3600 * 10**6
    chunk = 100_000
    for first in range(1, rows + 1, chunk):
        last = min(rows, first + chunk - 1)
        mysql(
            f"""
            INSERT INTO detections_detection
              (camera_id, tracking_id, vehicle_type, detected_at, received_at, image, thumbnail, confidence, bbox, plate)
            SELECT {camera_sql}, CONCAT('bulk-', s.seq), {type_sql},
                   NOW(6) - INTERVAL (60000000 + s.seq * {year_us // max(rows, 1)}) MICROSECOND,
                   NOW(6) - INTERVAL (60000000 + s.seq * {year_us // max(rows, 1)}) MICROSECOND,
                   '', '', 0.5 + (s.seq % 50) / 100, '[10, 20, 200, 100]',
                   CONCAT(LPAD(1 + s.seq % 81, 2, '0'), 'BLK', LPAD(s.seq % 1000, 3, '0'))
            FROM seq_{first}_to_{last} s
            """,
            DB_NAME,
        )
    manage(env, "shell", "-c", "from detections.core import counters; counters.rebuild()", log_path=log_path)
    mysql("ANALYZE TABLE detections_detection", DB_NAME)
    return time.monotonic() - started


def flush_redis_db9():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The command for a server that docker-compose.yml's web service does not run: the
# production choices (uvloop; WebSockets on; no permessage-deflate, which costs ~1 ms per
# event and socket for JPEG snapshots that do not compress). Host and port are the bench's.
SERVER_COMMANDS = {
    "uvicorn": [
        "uvicorn",
        APP,
        "--loop=uvloop",
        "--http=httptools",
        "--ws=websockets-sansio",
        "--ws-per-message-deflate=false",
        "--ws-max-size=65536",
        "--timeout-graceful-shutdown=5",
    ],
    # No permessage-deflate to turn off: granian never negotiates the extension.
    "granian": ["granian", "--interface=asgi", "--loop=uvloop", "--ws", "--workers-kill-timeout=5", APP],
}


def production_command() -> list[str]:
    """docker-compose.yml's command for the web service."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]
    assert command[0] in SERVER_COMMANDS, command
    return list(command)


def server_command(kind: str) -> list[str]:
    """The production command if docker-compose.yml runs this server, else SERVER_COMMANDS'."""
    production = production_command()
    return production if production[0] == kind else list(SERVER_COMMANDS[kind])


class Server:
    """The service: uvicorn or granian (as in production when docker-compose.yml runs it),
    or daphne; one or several processes."""

    def __init__(self, kind: str, workers: int, env: dict, log_path: Path, extra_args: list[str]):
        self.kind, self.workers, self.env, self.log_path = kind, workers, env, log_path
        self.processes: list[subprocess.Popen] = []
        self.ports: list[int] = []
        if kind == "daphne":
            # Daphne has no --workers: N processes on N ports; the generator spreads
            # its requests and sockets over them (Redis carries events across).
            for _ in range(workers):
                port = free_port()
                self.ports.append(port)
                command = [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), *extra_args, APP]
                self.processes.append(start_process(command, env=env, log_path=log_path))
        else:
            port = free_port()
            self.ports.append(port)
            # On a port of our own: both servers take the last --host and --port given.
            name, *args = server_command(kind)
            command = [str(VENV_BIN / name), *args, "--host", "127.0.0.1", "--port", str(port)]
            if workers > 1:
                command += ["--workers", str(workers)]
            command += extra_args
            self.processes.append(start_process(command, env=env, log_path=log_path))
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.wait_ready()

    @property
    def supervised(self) -> bool:
        """The app runs in worker processes under a supervisor: granian always forks its
        workers, uvicorn only with --workers."""
        return self.kind == "granian" or (self.kind == "uvicorn" and self.workers > 1)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        for url in self.urls:
            while True:
                for process in self.processes:
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"the server exited ({process.returncode}); see {self.log_path}:\n{tail(self.log_path)}"
                        )
                try:
                    with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url}/healthz did not answer within {timeout} s:\n{tail(self.log_path)}")
                time.sleep(0.2)
        if self.supervised:
            # The port answers once one worker is up; wait for all of them.
            while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)

    def all_processes(self) -> list[psutil.Process]:
        found = []
        for process in self.processes:
            try:
                leader = psutil.Process(process.pid)
                found.append(leader)
                found.extend(leader.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return found

    def worker_pids(self) -> list[int]:
        """The processes that run the app (a supervisor and its helpers do not)."""
        if self.supervised:
            leader = psutil.Process(self.processes[0].pid)
            return [c.pid for c in leader.children() if "multiprocessing.resource_tracker" not in " ".join(c.cmdline())]
        return [p.pid for p in self.processes]

    def rss(self) -> int:
        total = 0
        for process in self.all_processes():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self):
        for process in self.processes:
            stop_process(process, timeout=20)


def tail(path: Path, lines=30) -> str:
    try:
        return "".join(Path(path).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


# --- CPU accounting -------------------------------------------------------------------------------


def find_service_process(name: str) -> psutil.Process | None:
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == name:
            return process
    return None


class CpuMeter:
    """CPU seconds of named groups of processes between two snapshots (read only)."""

    def __init__(self, groups: dict):
        self.groups = groups  # name -> callable returning psutil.Process list

    def snapshot(self) -> dict:
        taken = {"_t": time.monotonic()}
        machine = psutil.cpu_times()
        # Everything busy on the machine, ours or not (others' tests share it).
        taken["machine"] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
        for name, processes in self.groups.items():
            total = 0.0
            for process in processes():
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            taken[name] = total
        return taken

    @staticmethod
    def seconds(before: dict, after: dict) -> dict:
        """CPU seconds each group used between the snapshots."""
        return {name: after[name] - before[name] for name in before if name not in ("_t", "machine")}

    @staticmethod
    def percent(before: dict, after: dict) -> dict:
        wall = after["_t"] - before["_t"]
        used = {name: 100 * (after[name] - before[name]) / wall for name in before if name != "_t" and wall > 0}
        if used:
            # Processes that are not part of the benchmark: a busy neighbour skews the row.
            used["other"] = max(0.0, used.pop("machine") - sum(used.values()))
        return used


# --- Snapshot pools -------------------------------------------------------------------------------


def make_pools(workdir: Path, env: dict) -> tuple[Path, Path]:
    """50 photo-like 640x480 snapshots and 50 small 160x120 ones, drawn before timing."""
    import io

    os.environ.update(
        {
            k: v
            for k, v in env.items()
            if k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DJANGO_SECRET_KEY", "DJANGO_DEBUG")
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import base64

    from PIL import Image

    from detections.simulation.camera import make_detection

    rng = random.Random(2026)
    big, small = [], []
    for n in range(50):
        body = make_detection(sequence=n, camera=CAMERAS[n % len(CAMERAS)], rng=rng)
        big.append(body)
        image = Image.open(io.BytesIO(base64.b64decode(body["vehicle_img"])))
        out = io.BytesIO()
        image.resize((160, 120), Image.Resampling.LANCZOS).save(out, "JPEG", quality=80)
        small.append(
            {
                **body,
                "vehicle_img": base64.b64encode(out.getvalue()).decode("ascii"),
                "bbox": [b // 4 for b in body["bbox"]],
            }
        )
    sizes = sorted(len(base64.b64decode(b["vehicle_img"])) for b in big)
    small_sizes = sorted(len(base64.b64decode(b["vehicle_img"])) for b in small)
    print(
        f"snapshot pool: 50 x 640x480 JPEG, {sizes[0] // 1024}-{sizes[-1] // 1024} KB (median {sizes[25] // 1024} KB); "
        f"50 x 160x120, median {small_sizes[25] / 1024:.1f} KB",
        flush=True,
    )
    big_path, small_path = workdir / "pool-640.json", workdir / "pool-160.json"
    big_path.write_text(json.dumps(big))
    small_path.write_text(json.dumps(small))
    return big_path, small_path


# --- Load generator processes ----------------------------------------------------------------------


class Gen:
    """One loadgen.py process, spoken to in JSON lines."""

    def __init__(self, args: list[str], log_path: Path):
        self.process = start_process(
            [PYTHON, str(BENCH / "loadgen.py"), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, log_path=log_path
        )
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(message)
                self.cond.notify_all()
        with self.cond:
            self.lines.append({"eof": True})
            self.cond.notify_all()

    def wait_for(self, key: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, message in enumerate(self.lines):
                    if key in message:
                        return self.lines.pop(i)
                    if "eof" in message:
                        raise RuntimeError(f"load generator ended early (exit {self.process.poll()})")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"load generator: no '{key}' within {timeout:.0f} s")
                self.cond.wait(left)

    def send(self, message: dict):
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def psutil(self) -> list[psutil.Process]:
        try:
            return [psutil.Process(self.process.pid)]
        except psutil.NoSuchProcess:
            return []

    def stop(self):
        try:
            self.send({"quit": True})
            self.process.wait(timeout=10)
        except Exception:
            pass
        stop_process(self.process)


def read_samples(path: Path) -> list[float]:
    samples = array("d")
    if path.exists():
        with open(path, "rb") as f:
            samples.frombytes(f.read())
    return sorted(samples)


def pct(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


# --- The benchmark ------------------------------------------------------------------------------------


class Bench:
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
        self.gens: list[Gen] = []

        def service(*names):
            found = next((p for n in names if (p := find_service_process(n))), None)
            return [found] if found else []

        self.cpu = CpuMeter(
            {
                "server": lambda: self.server.all_processes() if self.server else [],
                "gen": lambda: [p for g in self.gens for p in g.psutil()],
                "db": lambda: service("mariadbd", "mysqld"),
                "redis": lambda: service("redis-server"),
            }
        )
        extra = "".join(ch if ch.isalnum() else "-" for ch in " ".join(options.server_arg or [])).strip("-")
        self.label = (
            options.server
            + (f"-w{options.workers}" if options.workers > 1 else "")
            + (f"-{extra}" if extra else "")
            + ("-quick" if self.quick else "")
        )
        self.profile_dir = BENCH / "results" / "profiles"

    def say(self, text):
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def setup_credentials(self):
        """Cameras, one device key each (and one for batches), a viewer token."""
        out = subprocess.run(
            [PYTHON, str(BENCH / "bench_setup.py"), *CAMERAS],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"bench_setup.py failed:\n{out.stderr[-3000:]}")
        self.auth_path.write_text(out.stdout.strip().splitlines()[-1])
        auth = json.loads(self.auth_path.read_text())
        self.say(
            f"credentials: {len(auth['device_keys'])} device keys, viewer token {'yes' if auth['viewer_token'] else 'no'}"
        )

    # Server lifecycle

    def app_version(self) -> str:
        """The app's commit when the server starts (others may be changing it)."""
        try:
            sha = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--", "detections", "vehicle_monitor"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
        except OSError:
            return "unknown"
        return sha + (" + uncommitted edits" if dirty else "")

    def start_server(self, warm=True):
        flush_redis_db9()
        version = f"app {self.app_version()}"
        if version not in self.app_versions:
            self.app_versions.append(version)
        extra = list(self.o.server_arg or [])
        self.server = Server(self.o.server, self.o.workers, self.env, self.log, extra)
        self.say(f"{self.o.server} up on {', '.join(self.server.urls)} (pids {self.server.worker_pids()})")
        if warm:
            self.warm_up()

    def warm_up(self):
        """Imports, connections, the thread pool: not measured."""
        self.run_poster("post", {"concurrency": 8}, duration=3 if self.quick else 5, prefix=f"w{self.tag}")
        self.run_poster("stats", {}, requests=30, prefix="warm")
        time.sleep(1)

    def stop_server(self):
        if self.server:
            self.server.stop()
            self.server = None

    # Generators

    def next_prefix(self) -> str:
        self.row_counter += 1
        return f"b{self.tag}{self.row_counter:02d}"

    def open_listeners(self, sockets: int, prefix: str) -> list[Gen]:
        per_process = self.o.sockets_per_process
        counts = [per_process] * (sockets // per_process) + ([sockets % per_process] if sockets % per_process else [])
        gens = []
        ws_urls = [u.replace("http://", "ws://") for u in self.server.urls]
        for i, count in enumerate(counts):
            out = self.workdir / f"listen-{prefix}-{i}.bin"
            url_args = [a for u in ws_urls for a in ("--url", u)]
            extra = ["--client", self.o.ws_client] + ([] if self.o.deflate else ["--no-deflate"])
            gen = Gen(
                [
                    "listen",
                    *url_args,
                    "--sockets",
                    str(count),
                    "--prefix",
                    prefix + "-",
                    "--out",
                    str(out),
                    "--auth",
                    str(self.auth_path),
                    *extra,
                ],
                self.genlog,
            )
            gen.out = out
            gens.append(gen)
        self.gens.extend(gens)
        ready = [g.wait_for("ready", timeout=180) for g in gens]
        connected = sum(r["connected"] for r in ready)
        deflate = sum(r["deflate"] for r in ready)
        errors = [e for r in ready for e in r["errors"]]
        self.say(
            f"{connected}/{sockets} sockets open ({deflate} with permessage-deflate) in {max(r['connect_seconds'] for r in ready):.1f} s"
            + (f"; errors: {errors[:2]}" if errors else "")
        )
        self.listen_info = {"connected": connected, "deflate": deflate, "errors": errors}
        return gens

    def close_listeners(self, gens):
        for gen in gens:
            gen.stop()
            if gen in self.gens:
                self.gens.remove(gen)

    def run_poster(self, mode: str, params: dict, *, duration=None, prefix: str, requests=None, cpu=None):
        out = self.workdir / f"post-{prefix}.bin"
        args = [
            mode,
            *[a for u in self.server.urls for a in ("--url", u)],
            "--out",
            str(out),
            "--prefix",
            prefix,
            "--auth",
            str(self.auth_path),
        ]
        if mode in ("post", "batch"):
            args += [
                "--pool",
                str(self.small_pool if mode == "batch" else self.big_pool),
                "--duration",
                str(duration or self.duration),
            ]
            if params.get("rate"):
                args += ["--rate", str(params["rate"])]
            args += ["--concurrency", str(params.get("concurrency", 8))]
        if mode == "stats":
            # At most `requests`, and no longer than the row's duration (a slow query
            # at 1M rows must not take half an hour).
            args += ["--requests", str(requests), "--duration", str(duration or 3 * self.duration)]
        gen = Gen(args, self.genlog)
        try:
            # The CPU window is the poster's timed run; its own CPU it reports itself.
            gen.wait_for("go", timeout=60)
            before = cpu.snapshot() if cpu else None
            result = gen.wait_for("done", timeout=(duration or self.duration) + 300)
            after = cpu.snapshot() if cpu else None
        except BaseException:
            stop_process(gen.process)
            raise
        try:
            gen.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        stop_process(gen.process)
        result["latencies"] = read_samples(out)
        if cpu:
            result["cpu"] = CpuMeter.percent(before, after)
            result["cpu_used"] = CpuMeter.seconds(before, after)
        return result

    # Rows

    def wait_for_services_and_quiet(self):
        """MariaDB and Redis answering (others' outage tests stop them), and the
        machine not busy with anything else, before a row starts."""
        deadline = time.monotonic() + 300
        while True:
            try:
                mysql("SELECT 1")
                import redis

                redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"MariaDB or Redis is down: {exc}") from exc
                self.say(f"waiting for MariaDB/Redis ({type(exc).__name__})")
                time.sleep(3)
        if not self.o.wait_quiet:
            return
        deadline = time.monotonic() + self.o.wait_quiet
        while time.monotonic() < deadline:
            before = self.cpu.snapshot()
            time.sleep(1)
            other = CpuMeter.percent(before, self.cpu.snapshot())["other"]
            if other < 25:
                return
            self.say(f"machine busy with other processes ({other:.0f}% of a core); waiting")
        self.say("machine still busy; running the row anyway (see 'other' CPU in its notes)")

    def server_db_connections(self) -> int:
        """TCP connections from the server's processes to MariaDB (evidence for leaks)."""
        count = 0
        for process in self.server.all_processes() if self.server else []:
            try:
                count += sum(1 for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == 3306)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return count

    def service_pids(self):
        pids = []
        for names in (("mariadbd", "mysqld"), ("redis-server",)):
            for name in names:
                process = find_service_process(name)
                if process:
                    pids.append(process.pid)
                    break
        return pids

    def run_row_undisturbed(self, row_id: str) -> dict:
        """Run a row; run it again (twice at most) when MariaDB or Redis restarted
        meanwhile (other sessions' outage tests stop and start them)."""
        for attempt in range(3):
            before = self.service_pids()
            result = self.run_row(row_id)
            if self.service_pids() == before and len(before) == 2:
                return result
            result["disturbed"] = True
            self.say(
                "MariaDB or Redis restarted during the row (not by us)" + ("; running it again" if attempt < 2 else "")
            )
            time.sleep(5)
        return result

    def run_row(self, row_id: str):
        title, phase, kind, params = ROWS[row_id]
        self.wait_for_services_and_quiet()
        self.say(f"row {row_id}: {title.format(big=self.big_label)}")
        profiler = None
        try:
            if kind == "idle":
                return self.row_idle()
            if kind == "stats":
                return self.row_stats(row_id)
            prefix = self.next_prefix()
            listeners = self.open_listeners(params["sockets"], prefix) if params.get("sockets") else []
            try:
                for gen in listeners:
                    gen.send({"prefix": prefix + "-"})
                    gen.wait_for("armed", timeout=30)
                if self.o.profile and row_id in self.o.profile:
                    profiler = self.start_profiler(row_id)
                # Cpu snapshots bracket the poster's run (the poster's own CPU it reports itself).
                poster_params = dict(params)
                result = self.run_poster(
                    "batch" if kind == "batch" else "post", poster_params, prefix=prefix, cpu=self.cpu
                )
                drain = {}
                if listeners:
                    drain_seconds = 10.0 if self.quick else 30.0
                    for gen in listeners:
                        gen.send({"expected": result["created"], "drain": drain_seconds})
                    drained = [gen.wait_for("done", timeout=drain_seconds + 120) for gen in listeners]
                    samples = sorted(x for gen in listeners for x in read_samples(gen.out))
                    drain = {
                        "missing": sum(d["missing"] for d in drained),
                        "duplicates": sum(d["duplicates"] for d in drained),
                        "extra": sum(d["extra"] for d in drained),
                        "closed": sum(d["closed"] for d in drained),
                        "listen_cpu_seconds": sum(d["cpu_seconds"] for d in drained),
                        "listen_lag_p99": max(d["lag_p99_ms"] for d in drained),
                        "listen_lag_max": max(d["lag_max_ms"] for d in drained),
                        "delivery_p50": pct(samples, 0.5),
                        "delivery_p99": pct(samples, 0.99),
                        "delivery_max": samples[-1] if samples else None,
                        "deliveries": len(samples),
                        **self.listen_info,
                    }
            finally:
                if profiler:
                    self.stop_profiler(profiler)
                self.close_listeners(listeners)
            lat = result["latencies"]
            created = result["created"]
            row = {
                "db_connections": self.server_db_connections(),
                "dps": result["created"] / result["elapsed"],
                "post_p50": pct(lat, 0.5),
                "post_p99": pct(lat, 0.99),
                "requests": result["requests"],
                "created": created,
                "statuses": result["statuses"],
                "errors": result["errors"],
                "gen_cpu": 100 * result["cpu_seconds"] / result["elapsed"] + result["cpu"].get("gen", 0),
                "cpu": result["cpu"],
                # The cost of a unit of work, which a faster rate alone does not show: CPU
                # time over the poster's window for the detections (batch items) it created.
                "cpu_ms_per_det": {g: 1000 * result["cpu_used"][g] / created for g in ("server", "db", "redis")}
                if created
                else {},
                "poster_lag_p99": result["lag_p99_ms"],
                "late_p99": result["late_p99_ms"],
                "shed": result.get("shed", 0),
                **drain,
            }
            if params.get("sockets") is None or params.get("sockets") == 0:
                row["missing"] = None
            return row
        except Exception:
            if profiler:
                self.stop_profiler(profiler)
            raise

    def row_idle(self):
        # On a fresh server: memory freed by earlier rows (kept by the allocator)
        # would hide what sockets take. The first 200 sockets absorb what the first
        # socket initialises once; the next 1000 are measured.
        sockets = 1000
        self.stop_server()
        self.start_server(warm=False)
        first = self.open_listeners(200, "idle")
        gens = []
        try:
            time.sleep(3)
            before = self.server.rss()
            gens = self.open_listeners(sockets, "idle")
            time.sleep(3)
            after = self.server.rss()
            connected = self.listen_info["connected"]
        finally:
            self.close_listeners(gens + first)
        self.warm_up()
        return {
            "kb_per_socket": (after - before) / 1024 / max(connected, 1),
            "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20,
            "sockets": connected,
            "deflate": self.listen_info["deflate"],
        }

    def row_stats(self, row_id):
        requests = 200 if self.quick else 1000
        result = self.run_poster("stats", {}, requests=requests, prefix="stats", cpu=self.cpu)
        lat = result["latencies"]
        return {
            "post_p50": pct(lat, 0.5),
            "post_p99": pct(lat, 0.99),
            "rps": result["requests"] / result["elapsed"],
            "requests": result["requests"],
            "statuses": result["statuses"],
            "errors": result["errors"],
            "cpu": result["cpu"],
            "gen_cpu": 100 * result["cpu_seconds"] / result["elapsed"],
        }

    # Profiling

    def start_profiler(self, row_id):
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        pid = self.server.worker_pids()[0]
        stem = self.profile_dir / f"{datetime.now(UTC):%Y-%m-%d}-{self.label}-{row_id}"
        command = [
            str(VENV_BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--format",
            "raw",
            "--gil",
            "--nonblocking",
            "-o",
            f"{stem}.txt",
            "--duration",
            str(int(self.duration) + 5),
        ]
        self.say(f"py-spy recording pid {pid} -> {stem}.txt")
        process = start_process(command, log_path=self.workdir / "py-spy.log")
        process.stem = stem
        time.sleep(1)
        return process

    def stop_profiler(self, process):
        try:
            process.wait(timeout=self.duration + 60)
        except subprocess.TimeoutExpired:
            pass
        # py-spy writes its file on SIGINT; ends its own group only.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        stop_process(process)
        raw = Path(f"{process.stem}.txt")
        if raw.exists():
            summary = summarize_profile(raw)
            Path(f"{process.stem}-summary.txt").write_text(summary)
            self.say(f"profile summary -> {process.stem}-summary.txt\n{summary[:3000]}")

    # The run

    def run(self):
        rows = self.o.rows or list(ROWS)
        unknown = [r for r in rows if r not in ROWS]
        if unknown:
            raise SystemExit(f"unknown rows: {unknown}; known: {', '.join(ROWS)}")
        self.big_label = f"{self.big_rows // 1000}k" if self.big_rows < 10**6 else f"{self.big_rows / 10**6:g}M"
        self.big_pool, self.small_pool = make_pools(self.workdir, self.env)
        self.notes_setup = []
        for phase, size in (("small", 1000), ("big", self.big_rows)):
            phase_rows = [r for r in ROWS if r in rows and ROWS[r][1] == phase]
            if not phase_rows:
                continue
            for attempt in range(3):
                # Others' outage tests may stop MariaDB in the middle: try again.
                self.wait_for_services_and_quiet()
                self.say(f"database {DB_NAME}: recreate, migrate, bulk-load {size} rows")
                try:
                    recreate_database(self.env, self.log)
                    self.setup_credentials()
                    seconds = bulk_load(size, self.env, self.log)
                    break
                except Exception as exc:
                    if attempt == 2:
                        raise
                    self.say(f"setting up the database failed ({str(exc)[:200]}); again")
                    time.sleep(10)
            self.say(f"bulk-loaded {size} rows and rebuilt the counters in {seconds:.0f} s")
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
                        self.say(f"  row {row_id} failed: {exc}\n{tail(self.log, 10)}")
                        for gen in list(self.gens):
                            gen.stop()
                        self.gens.clear()
                        # A fresh server for the next row: this one may have died, or (seen
                        # with uvicorn after the steady-rate rows) still hold every MySQL
                        # connection the server allows, so that nothing else can connect.
                        self.say(f"server holds {self.server_db_connections()} MySQL connections; starting it again")
                        self.stop_server()
                        self.start_server()
                        continue
                    self.say(f"  -> {format_brief(self.results[row_id])}")
                    if self.results[row_id].get("missing"):
                        # Undelivered events are still queued in the server: the next row
                        # would pay for them. Start it on a fresh server.
                        self.say("events still undelivered: restarting the server for the next row")
                        self.stop_server()
                        self.start_server()
            finally:
                self.stop_server()
                shutil.rmtree(self.media, ignore_errors=True)
                self.media.mkdir(exist_ok=True)
        return self.report(rows)

    def report(self, rows) -> str:
        header = [
            "row",
            "det/s",
            "server CPU ms/det",
            "MariaDB CPU ms/det",
            "POST p50 / p99 (ms)",
            "delivery p50 / p99 (ms)",
            "events missing",
            "target",
            "met",
            "notes",
        ]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row_id in rows:
            r = self.results.get(row_id)
            if r is None:
                continue
            title = ROWS[row_id][0].format(big=self.big_label)
            if "error" in r:
                lines.append(
                    "| " + " | ".join([title, *["—"] * 6, "", "**failed**", r["error"].replace("|", "/")]) + " |"
                )
                continue
            target, met = target_check(row_id, r, self.results)
            met_text = "—" if met is None else ("yes" if met else "**no**")
            lines.append("| " + " | ".join([title, *cells(row_id, r), target, met_text, notes(row_id, r)]) + " |")
        table = "\n".join(lines)
        command = "benchmarks/run.py " + " ".join(sys.argv[1:])
        try:
            versions = f"{mysql('SELECT VERSION()', fetch=True)[0][0]}, Redis {redis_version()}"
        except Exception:  # a service down must not lose the table
            versions = "MariaDB and Redis (versions unavailable)"
        head = (
            f"## {self.label}: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"`{command}` — {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"{versions}, Python {platform.python_version()}; "
            f"{self.duration:g} s per row; {'; '.join(self.notes_setup)}; {', then '.join(self.app_versions)}.\n"
            "CPU ms/det: CPU time of all the server's processes (of MariaDB; of Redis in the notes) over the poster's "
            "timed window, divided by the detections (batch items) created in it.\n"
            "CPU in notes: % of one core over the row (server processes, load generator, MariaDB, Redis).\n"
        )
        return head + "\n" + table + "\n"


def redis_version() -> str:
    import redis

    return redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]


def fmt(value, digits=1):
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def cells(row_id, r):
    if row_id == "idle":
        return ["—"] * 6
    if row_id.startswith("stats"):
        return ["—", "—", "—", f"{fmt(r['post_p50'])} / {fmt(r['post_p99'])}", "—", "—"]
    delivery = "—" if r.get("delivery_p50") is None else f"{fmt(r['delivery_p50'])} / {fmt(r['delivery_p99'])}"
    missing = "—" if r.get("missing") is None else str(r["missing"])
    per_det = r.get("cpu_ms_per_det", {})
    return [
        fmt(r["dps"]),
        fmt(per_det.get("server"), 2),
        fmt(per_det.get("db"), 2),
        f"{fmt(r['post_p50'])} / {fmt(r['post_p99'])}",
        delivery,
        missing,
    ]


def notes(row_id, r) -> str:
    parts = ["**MariaDB or Redis restarted during the row**"] if r.get("disturbed") else []
    if row_id == "idle":
        return "; ".join(
            parts
            + [
                f"{r['kb_per_socket']:.1f} KB per socket: RSS {r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f} MB "
                f"while 1000 more idle sockets opened (after 200 first; {r['deflate']} of them deflate)"
            ]
        )
    if row_id.startswith("stats"):
        parts.append(f"GET in the POST column, {r['rps']:.1f} req/s sequential, {r['requests']} requests")
    bad = {k: v for k, v in r.get("statuses", {}).items() if k not in ("200", "201")}
    if bad:
        parts.append(f"non-2xx: {bad}")
    if r.get("errors"):
        parts.append(f"first error: {str(r['errors'][0])[:80]}")
    cpu = r.get("cpu", {})
    if cpu:
        redis_ms = r.get("cpu_ms_per_det", {}).get("redis")
        redis_per_det = "" if redis_ms is None else f" ({redis_ms:.2f} ms/det)"
        parts.append(
            f"CPU server {cpu.get('server', 0):.0f}%, gen {r.get('gen_cpu', 0):.0f}%, db {cpu.get('db', 0):.0f}%, "
            f"redis {cpu.get('redis', 0):.0f}%{redis_per_det}, other {cpu.get('other', 0):.0f}%"
        )
    if r.get("connected") is not None:
        parts.append(f"{r['connected']} sockets ({r['deflate']} deflate)")
        if r.get("duplicates"):
            parts.append(f"{r['duplicates']} duplicates")
        if r.get("closed"):
            parts.append(f"{r['closed']} sockets closed")
        if r.get("delivery_max") is not None:
            parts.append(f"delivery max {fmt(r['delivery_max'])} ms")
        if r.get("listen_lag_p99", 0) > 5:
            parts.append(f"listener loop lag p99 {r['listen_lag_p99']:.0f} ms")
    if r.get("db_connections", 0) > 20:
        parts.append(f"server holds {r['db_connections']} MySQL connections after the row")
    if r.get("shed"):
        parts.append(f"{r['shed']} sends shed (128 requests already waiting)")
    if r.get("late_p99", 0) > 5:
        parts.append(f"sends late p99 {r['late_p99']:.0f} ms")
    return "; ".join(parts)


def format_brief(r) -> str:
    keys = [
        "dps",
        "cpu_ms_per_det",
        "post_p50",
        "post_p99",
        "delivery_p50",
        "delivery_p99",
        "missing",
        "kb_per_socket",
        "gen_cpu",
        "cpu",
    ]
    return ", ".join(
        f"{k}={json.dumps(r[k], default=str) if isinstance(r[k], dict) else fmt(r[k]) if isinstance(r[k], float) else r[k]}"
        for k in keys
        if k in r
    )


# --- Profiles -------------------------------------------------------------------------------------------


def summarize_profile(path: Path, top=25) -> str:
    """Top functions by own and by total samples, from py-spy's raw (collapsed) output."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        # The thread name comes first in py-spy's raw format when present.
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    out = [
        f"{samples} samples (py-spy --gil: only the thread holding the GIL, i.e. where the Python CPU goes)",
        "",
        "own time:",
    ]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / samples:5.1f}%  {frame}")
    out += ["", "total time (the function and what it calls):"]
    for frame, n in sorted(total.items(), key=lambda kv: -kv[1])[: top * 2]:
        out.append(f"  {100 * n / samples:5.1f}%  {frame}")
    out += ["", "total time, the project's own functions (detections/, vehicle_monitor/):"]
    mine = [(f, n) for f, n in total.items() if "detections/" in f or "vehicle_monitor/" in f]
    for frame, n in sorted(mine, key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / samples:5.1f}%  {frame}")
    return "\n".join(out) + "\n"


# --- Main ---------------------------------------------------------------------------------------------


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

    # Ctrl-C stops the run even when started from a shell that ignores SIGINT in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(stop_all)
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
            print(
                json.dumps(
                    {k: {kk: vv for kk, vv in v.items() if kk != "latencies"} for k, v in bench.results.items()},
                    default=str,
                )
            )
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
        results = BENCH / "results"
        results.mkdir(exist_ok=True)
        path = results / f"{datetime.now(UTC):%Y-%m-%d}-{bench.label}.md"
        with path.open("a") as f:
            f.write(table + "\n")
        raw = results / f"{datetime.now(UTC):%Y-%m-%d}-{bench.label}.json"
        raw.write_text(
            json.dumps(
                {k: {kk: vv for kk, vv in v.items() if kk != "latencies"} for k, v in bench.results.items()},
                indent=1,
                default=str,
            )
        )
        print(f"written to {path}")
    print(f"server and generator logs: {bench.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
