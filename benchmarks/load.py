"""Driving the load: the rows and the load each one puts on the server, the snapshot
pools the posters send, and the loadgen.py processes (listeners holding sockets,
posters sending requests) that run.py speaks to in JSON lines."""

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path

import psutil
from bench_processes import BENCH, PYTHON, ROOT, CpuMeter, say, start_process, stop_process
from database import CAMERAS
from measures import delivery_record

# id: (title, phase, kind, parameters). Phase "small" runs on a table bulk-loaded
# with 1k rows, phase "big" on one with 1M (100k with --quick).
ROWS = {
    "idle": ("Idle sockets: RSS per socket", "small", "idle", {}),
    "stats-1k": ("GET /api/stats, 1k rows", "small", "stats", {}),
    "ingest-1k": ("Ingest, 1k rows, 8 posters", "small", "post", {"sockets": 0, "concurrency": 8}),
    "watch-match": ("Watch-list match, 100k plates in 3 lists, in-process", "small", "watch-match", {}),
    "s0-max": ("Ingest, 0 sockets, 8 posters", "small", "post", {"sockets": 0, "concurrency": 8}),
    "s0-watch": (
        "Ingest, 100k watched plates, 5 rules, 8 posters",
        "small",
        "post",
        {"sockets": 0, "concurrency": 8, "watch": True},
    ),
    "hooks-3": (
        "Ingest, 3 webhook endpoints, 8 posters",
        "small",
        "post",
        {"sockets": 0, "concurrency": 8, "hooks": 3},
    ),
    "hooks-latency": (
        "Webhooks, 3 endpoints, steady 33 det/s (~100 msg/s)",
        "small",
        "post",
        {"sockets": 0, "rate": 33, "hooks": 3},
    ),
    "s0-rate": ("Ingest, 0 sockets, steady 300/s", "small", "post", {"sockets": 0, "rate": 300}),
    "s100-max": ("Ingest, 100 sockets, 8 posters", "small", "post", {"sockets": 100, "concurrency": 8}),
    "s100-rate": ("Ingest, 100 sockets, steady 100/s", "small", "post", {"sockets": 100, "rate": 100}),
    "s1000-max": ("Ingest, 1000 sockets, 8 posters", "small", "post", {"sockets": 1000, "concurrency": 8}),
    "s1000-rate": ("Ingest, 1000 sockets, steady 10/s", "small", "post", {"sockets": 1000, "rate": 10}),
    "batch": ("Batch ingest, 100 x 160x120 per POST, 2 posters", "small", "batch", {"concurrency": 2}),
    "stats-1m": ("GET /api/stats, {big} rows", "big", "stats", {}),
    "ingest-1m": ("Ingest, {big} rows, 8 posters", "big", "post", {"sockets": 0, "concurrency": 8}),
    "plate-like-1m": ("GET /api/detections/?plate_like=, {big} rows", "big", "plate-like", {}),
}


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


def read_samples(path: Path, in_order=False) -> list[float]:
    """A generator's latency samples (ms, as doubles in its --out file), sorted
    (or as written, one per request in turn)."""
    samples = array("d")
    if path.exists():
        with open(path, "rb") as f:
            samples.frombytes(f.read())
    return list(samples) if in_order else sorted(samples)


class Gen:
    """One loadgen.py process, spoken to in JSON lines."""

    def __init__(self, args: list[str], log_path: Path, script: str = "loadgen.py"):
        self.process = start_process(
            [PYTHON, str(BENCH / script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, log_path=log_path
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


class Load:
    """The run's load generators: listener processes that hold sockets across a row,
    and one poster process per timed run."""

    def __init__(self, options, workdir: Path, auth_path: Path, log_path: Path, duration: float):
        self.o = options
        self.workdir, self.auth_path, self.log_path, self.duration = workdir, auth_path, log_path, duration
        self.gens: list[Gen] = []
        self.listen_info: dict = {}
        self.big_pool: Path | None = None  # drawn by draw_pools before any row
        self.small_pool: Path | None = None

    def draw_pools(self, env: dict):
        self.big_pool, self.small_pool = make_pools(self.workdir, env)

    def processes(self) -> list[psutil.Process]:
        """The listeners' processes, for CPU accounting (a poster reports its own CPU)."""
        return [p for g in self.gens for p in g.psutil()]

    def stop_listeners(self):
        for gen in list(self.gens):
            gen.stop()
        self.gens.clear()

    def open_listeners(self, urls: list[str], sockets: int, prefix: str) -> list[Gen]:
        per_process = self.o.sockets_per_process
        counts = [per_process] * (sockets // per_process) + ([sockets % per_process] if sockets % per_process else [])
        gens = []
        ws_urls = [u.replace("http://", "ws://") for u in urls]
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
                self.log_path,
            )
            gen.out = out
            gens.append(gen)
        self.gens.extend(gens)
        ready = [g.wait_for("ready", timeout=180) for g in gens]
        connected = sum(r["connected"] for r in ready)
        deflate = sum(r["deflate"] for r in ready)
        errors = [e for r in ready for e in r["errors"]]
        say(
            f"{connected}/{sockets} sockets open ({deflate} with permessage-deflate) in {max(r['connect_seconds'] for r in ready):.1f} s"
            + (f"; errors: {errors[:2]}" if errors else "")
        )
        self.listen_info = {"connected": connected, "deflate": deflate, "errors": errors}
        return gens

    def arm_listeners(self, gens: list[Gen], prefix: str):
        """From now on the listeners count the events of this row's tracking ids."""
        for gen in gens:
            gen.send({"prefix": prefix + "-"})
            gen.wait_for("armed", timeout=30)

    def drain_listeners(self, gens: list[Gen], expected: int, seconds: float) -> dict:
        """Give the listeners up to `seconds` to receive the `expected` events; their delivery record."""
        for gen in gens:
            gen.send({"expected": expected, "drain": seconds})
        drained = [gen.wait_for("done", timeout=seconds + 120) for gen in gens]
        samples = sorted(x for gen in gens for x in read_samples(gen.out))
        return delivery_record(drained, samples, self.listen_info)

    def close_listeners(self, gens: list[Gen]):
        for gen in gens:
            gen.stop()
            if gen in self.gens:
                self.gens.remove(gen)

    def run_poster(
        self,
        urls: list[str],
        mode: str,
        params: dict,
        *,
        duration=None,
        prefix: str,
        requests=None,
        cpu=None,
        plates: Path | None = None,
        paths: Path | None = None,
    ) -> dict:
        out = self.workdir / f"post-{prefix}.bin"
        args = [
            mode,
            *[a for u in urls for a in ("--url", u)],
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
            if plates:
                args += ["--plates", str(plates)]
        if paths:
            args += ["--paths", str(paths)]
        if mode == "stats":
            # At most `requests`, and no longer than the row's duration (a slow query
            # at 1M rows must not take half an hour).
            args += ["--requests", str(requests), "--duration", str(duration or 3 * self.duration)]
        gen = Gen(args, self.log_path)
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
        if paths:
            result["in_order"] = read_samples(out, in_order=True)
        if cpu:
            result["cpu"] = CpuMeter.percent(before, after)
            result["cpu_used"] = CpuMeter.seconds(before, after)
        return result


async def post_steadily(url: str, key: str, cameras: list[str], rate: float, seconds: float, phase: str) -> dict:
    """An open loop in this process (benchmarks/visits.py, journeys.py): a POST
    every 1/rate s whatever the answers take; each read's id -> the wall-clock
    time its answer arrived. Vehicles come and go: every plate is read at a
    camera, then a few minutes' worth of reads later at another."""
    import httpx
    from visit_day import distinct_plates

    rng = random.Random(phase)
    answered: dict[int, float] = {}
    plates = distinct_plates(2000, rng)
    inside: list[str] = []
    tag = phase.replace(" ", "")
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=30) as client:

        async def one(n: int):
            if inside and (len(inside) > 200 or rng.random() < 0.5):
                plate = inside.pop(rng.randrange(len(inside)))
                camera = rng.choice(cameras)
            else:
                plate = plates[n % len(plates)]
                inside.append(plate)
                camera = rng.choice(cameras)
            body = {
                "id": f"{tag}-{n}",
                "vehicle_type": "car",
                "time": datetime.now(UTC).isoformat(),
                "camera": camera,
                "plate": plate,
            }
            response = await client.post("/api/detections/", json=body)
            if response.status_code == 201:
                answered[response.json()["id"]] = time.time()

        tasks = []
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            tasks.append(asyncio.create_task(one(n)))
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return answered
