"""The MQTT bridge against its targets (docs/mqtt.md), one command, a table:

    .venv/bin/python benchmarks/mqtt.py            # 5 minutes at 50/s out, 10,000 in (~12 min)
    .venv/bin/python benchmarks/mqtt.py --quick    # 1 minute out, 2,000 in (~4 min)
    .venv/bin/python benchmarks/mqtt.py --parts out  # only the out part (also: in, drill)

- out: detections POSTed over HTTP at --rate a second for --duration seconds; a
  subscriber on the broker gets every event: none missing, in seq order, and the
  latency from the HTTP answer to the subscriber (both clocks in this process);
- in: --ingest detections published at QoS 1 by --publishers units, against the
  same number POSTed over HTTP by as many clients: the CPU per detection of the
  bridge, the server and MariaDB, counted alike in both;
- drill: the same MQTT ingest again, with the bridge SIGKILLed once and the broker
  restarted once (gracefully, with persistence) meanwhile: every detection stored
  exactly once.

It runs on the machine's MariaDB (database vm_bench, recreated) and Redis (db 9),
as benchmarks/run.py does, and starts its own server (docker-compose.yml's web
command), bridge and Mosquitto (a free port, a temporary folder). MariaDB's CPU is
the whole server's: other work on the machine shows in it (the table says how busy
the machine was otherwise).
"""

import argparse
import asyncio
import base64
import io
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import paho.mqtt.client as mqtt
import psutil
from bench_processes import (
    PYTHON,
    CpuMeter,
    Server,
    free_port,
    say,
    service_processes,
    start_process,
    stop_all_on_exit,
    stop_process,
    wait_for_quiet,
)
from database import bench_env, make_credentials, recreate_database, wait_for_services
from measures import pct
from PIL import Image

PREFIX = "vm_bench"
RESULTS = Path(__file__).resolve().parent / "results"


# --- The broker, the bridge -----------------------------------------------------------------


class Broker:
    """A Mosquitto of the run's own, with docs/mqtt.md's persistence and queue settings."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "data").mkdir(parents=True)
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/data/\nautosave_interval 60\nmax_queued_messages 200000\n"
            f"max_queued_bytes 2000000000\nlog_dest file {folder}/mosquitto.log\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.process = None
        self.start()

    def start(self):
        self.process = start_process(["/usr/sbin/mosquitto", "-c", str(self.config)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def restart(self):
        stop_process(self.process)  # SIGTERM: it saves its persistence first
        self.start()

    def processes(self) -> list[psutil.Process]:
        try:
            return [psutil.Process(self.process.pid)]
        except psutil.NoSuchProcess:
            return []


class Bridge:
    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path = env, log_path
        self.process = None
        self.start()

    def start(self):
        self.process = start_process([PYTHON, "manage.py", "mqtt_bridge"], env=self.env, log_path=self.log_path)

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def processes(self) -> list[psutil.Process]:
        try:
            return [psutil.Process(self.process.pid)]
        except psutil.NoSuchProcess:
            return []


def client(port: int, client_id: str = "", *, persistent: bool = False) -> mqtt.Client:
    made = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
    made.max_inflight_messages_set(100)
    made.reconnect_delay_set(1, 1)
    made.connect("127.0.0.1", port)
    made.loop_start()
    return made


def wait_online(port: int, timeout=60):
    seen = threading.Event()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda c, u, m: m.payload == b"online" and seen.set()
    watcher.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/status", 1)
    watcher.connect("127.0.0.1", port)
    watcher.loop_start()
    try:
        if not seen.wait(timeout):
            raise RuntimeError("the bridge did not come online")
    finally:
        watcher.disconnect()
        watcher.loop_stop()


# --- What is sent ---------------------------------------------------------------------------


def snapshot_b64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 90, 160)).save(out, "JPEG", quality=80)
    return base64.b64encode(out.getvalue()).decode()


def body(n: int, camera: str, image: str, tag: str) -> dict:
    return {
        "id": f"{tag}-{n}",
        "vehicle_type": ("car", "truck", "van", "bus")[n % 4],
        "time": datetime.now(UTC).isoformat(),
        "camera": camera,
        "plate": f"34BNC{n % 1000:03d}",
        "confidence": 0.9,
        "vehicle_img": image,
    }


# --- Out: HTTP in, MQTT out -----------------------------------------------------------------


def run_out(server: Server, port: int, keys: dict, cameras: list[str], rate: float, duration: float) -> dict:
    arrivals: dict[int, float] = {}
    seqs: list[int] = []
    lock = threading.Lock()

    def on_message(_c, _u, message):
        at = time.time()
        event = json.loads(message.payload)
        with lock:
            seqs.append(event["seq"])
            arrivals.setdefault(event["id"], at)

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = on_message
    subscriber.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/cameras/+/detection", 1)
    subscriber.connect("127.0.0.1", port)
    subscriber.loop_start()
    time.sleep(1)  # its subscription in place before the first POST
    image = snapshot_b64()
    answered: dict[int, float] = {}
    failures = 0

    async def post_all():
        nonlocal failures
        total = int(rate * duration)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

            async def post(n):
                nonlocal failures
                camera = cameras[n % len(cameras)]
                async with session.post(
                    f"{server.urls[0]}/api/detect",
                    json=body(n, camera, image, "out"),
                    headers={"Authorization": f"Token {keys[camera]}"},
                ) as response:
                    at = time.time()
                    if response.status != 201:
                        failures += 1
                        return
                    answered[(await response.json())["id"]] = at

            started = time.monotonic()
            tasks = []
            for n in range(total):
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                tasks.append(asyncio.create_task(post(n)))
            await asyncio.gather(*tasks)

    asyncio.run(post_all())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not set(answered) <= set(arrivals):
        time.sleep(0.1)
    subscriber.disconnect()
    subscriber.loop_stop()
    latencies = sorted(1000 * (arrivals[i] - answered[i]) for i in answered if i in arrivals)
    distinct = []
    for seq in seqs:
        if not distinct or seq > distinct[-1]:
            distinct.append(seq)
    return {
        "posted": len(answered),
        "failed_posts": failures,
        "missing": len(set(answered) - set(arrivals)),
        "repeats": len(seqs) - len(distinct),
        "in_order": all(b > a for a, b in zip(distinct, distinct[1:], strict=False)),
        "gaps": sum(1 for a, b in zip(distinct, distinct[1:], strict=False) if b != a + 1),
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
        "max": latencies[-1] if latencies else None,
    }


# --- In: MQTT against HTTP ------------------------------------------------------------------


def stored(tag: str) -> int:
    from django.db import connections

    from detections.models import Detection

    connections.close_all()
    return Detection.objects.filter(tracking_id__startswith=f"{tag}-").count()


def run_http_ingest(server: Server, keys: dict, cameras: list[str], count: int, clients: int) -> None:
    image = snapshot_b64()

    async def unit(first: int, session):
        for n in range(first, count, clients):
            camera = cameras[n % len(cameras)]
            async with session.post(
                f"{server.urls[0]}/api/detect",
                json=body(n, camera, image, "http"),
                headers={"Authorization": f"Token {keys[camera]}"},
            ) as response:
                await response.read()

    async def main():
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(unit(first, session) for first in range(clients)))

    asyncio.run(main())


def run_mqtt_ingest(port: int, cameras: list[str], count: int, publishers: int, tag: str, drill=None):
    """Publish `count` detections from `publishers` units (persistent sessions, so
    that what a broker restart interrupts is sent again); `drill(published)` is
    called as they go. Returns when the broker took every one."""
    image = snapshot_b64()
    units = [client(port, f"{tag}-unit-{n}", persistent=True) for n in range(publishers)]
    # Acknowledgements counted as they come: one sent while the broker was down is
    # queued by paho and sent at the reconnection (its info keeps "no connection").
    acked = [set() for _ in units]
    lock = threading.Lock()
    for index, unit in enumerate(units):

        def on_publish(_c, _u, mid, _reason, _properties, index=index):
            with lock:
                acked[index].add(mid)

        unit.on_publish = on_publish
    sent = [set() for _ in units]
    for n in range(count):
        camera = cameras[n % len(cameras)]
        index = n % publishers
        info = units[index].publish(f"{PREFIX}/ingest/{camera}", json.dumps(body(n, camera, image, tag)), qos=1)
        sent[index].add(info.mid)
        if drill:
            drill(n + 1)
    while True:
        with lock:
            if all(mids <= got for mids, got in zip(sent, acked, strict=True)):
                break
        time.sleep(0.05)
    for unit in units:
        unit.disconnect()
        unit.loop_stop()


def wait_published(timeout: float = 120):
    """Until the bridge has published every event committed so far (its cursor
    at the head of the log): its CPU for them counts in the run that made them."""
    from django.db import connections

    from detections.models import FollowerCursor, feed_head

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connections.close_all()
        if FollowerCursor.objects.filter(name="mqtt", position__gte=feed_head()).exists():
            return
        time.sleep(0.2)


def wait_stored(tag: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    while stored(tag) < count and time.monotonic() - started < timeout:
        time.sleep(0.2)
    return time.monotonic() - started


# --- The run ----------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 minute out, 2,000 in")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--ingest", type=int)
    parser.add_argument("--publishers", type=int, default=10)
    parser.add_argument("--parts", default="out,in,drill", help="which parts to run (out, in, drill)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    duration = args.duration or (60 if args.quick else 300)
    count = args.ingest or (2000 if args.quick else 10_000)

    stop_all_on_exit()
    wait_for_services()
    workdir = Path(tempfile.mkdtemp(prefix="vm-bench-mqtt-"))
    say(f"working in {workdir}")
    broker = Broker(workdir / "broker")
    env = {
        **bench_env(workdir / "media"),
        "MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "MQTT_TOPIC_PREFIX": PREFIX,
        "MQTT_DISCOVERY_PREFIX": f"{PREFIX}-ha",
        "MQTT_CLIENT_ID": f"{PREFIX}-bridge",
        "MQTT_INGEST": "true",
        "MQTT_RECONNECT_MAX_SECONDS": "2",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith(("DATABASE_URL", "MQTT_", "MEDIA_ROOT"))})
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vehicle_monitor.settings")
    import django

    django.setup()
    log = workdir / "processes.log"
    recreate_database(env, log)
    auth = workdir / "auth.json"
    make_credentials(env, auth)
    keys = json.loads(auth.read_text())["device_keys"]
    cameras = [name for name in keys if name != "*"]
    server = Server("uvicorn", 1, env, workdir / "server.log", [])
    bridge = Bridge(env, workdir / "bridge.log")
    wait_online(broker.port)
    cpu = CpuMeter(
        {
            "server": server.all_processes,
            "bridge": bridge.processes,
            "mariadb": lambda: service_processes("mariadbd", "mysqld"),
            "mosquitto": broker.processes,
        }
    )
    rows = {}
    try:
        if "out" in parts:
            wait_for_quiet(cpu, 60)
            say(f"out: {args.rate:g}/s for {duration:g} s over HTTP, watched on MQTT")
            before = cpu.snapshot()
            rows["out"] = run_out(server, broker.port, keys, cameras, args.rate, duration)
            rows["out"]["other"] = CpuMeter.percent(before, cpu.snapshot()).get("other")
            say(f"out: {rows['out']}")
        if "in" in parts:
            ingest_against_http(rows, server, broker, cpu, keys, cameras, count, args.publishers)
        if "drill" in parts:
            rows["drill"] = drill_run(broker, bridge, cameras, count, args.publishers)
    finally:
        server.stop()
        stop_process(bridge.process)
        stop_process(broker.process)
    report = table(rows, args, duration, count)
    print(report)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stem = RESULTS / f"{time.strftime('%Y-%m-%d')}-mqtt{'-quick' if args.quick else ''}-{'-'.join(sorted(parts))}"
        stem.with_suffix(".md").write_text(report)
        stem.with_suffix(".json").write_text(json.dumps(rows, indent=2, default=str))
        say(f"saved {stem}.md")
    shutil.rmtree(workdir / "media", ignore_errors=True)


def ingest_against_http(rows, server, broker, cpu, keys, cameras, count, publishers):
    wait_for_quiet(cpu, 60)
    say(f"in over HTTP: {count} by {publishers} clients")
    before = cpu.snapshot()
    run_http_ingest(server, keys, cameras, count, publishers)
    wait_stored("http", count, 120)
    wait_published()  # the bridge publishes their events too: counted alike
    rows["http"] = {"stored": stored("http"), **CpuMeter.seconds(before, cpu.snapshot())}
    rows["http"]["other"] = CpuMeter.percent(before, cpu.snapshot()).get("other")
    say(f"in over HTTP: {rows['http']}")

    wait_for_quiet(cpu, 60)
    say(f"in over MQTT: {count} from {publishers} units at QoS 1")
    before = cpu.snapshot()
    run_mqtt_ingest(broker.port, cameras, count, publishers, "mqtt")
    drained = wait_stored("mqtt", count, 300)
    wait_published()
    rows["mqtt"] = {"stored": stored("mqtt"), "drain_s": drained, **CpuMeter.seconds(before, cpu.snapshot())}
    rows["mqtt"]["other"] = CpuMeter.percent(before, cpu.snapshot()).get("other")
    say(f"in over MQTT: {rows['mqtt']}")


def drill_run(broker, bridge, cameras, count, publishers) -> dict:
    say("drill: the same with the bridge SIGKILLed once and the broker restarted once")
    events = []

    def drill(published):
        if published == count // 3:
            bridge.kill()
            events.append(f"bridge SIGKILLed at {published} published")
            bridge.start()
        elif published == 2 * count // 3:
            broker.restart()
            events.append(f"broker restarted at {published} published")

    run_mqtt_ingest(broker.port, cameras, count, publishers, "drill", drill)
    wait_stored("drill", count, 300)
    row = {"stored": stored("drill"), "events": events}
    say(f"drill: {row}")
    return row


def per_detection(row: dict, count: int) -> float:
    return 1000 * (row["server"] + row["bridge"] + row["mariadb"]) / count


def table(rows: dict, args, duration: float, count: int) -> str:
    lines = [
        f"# MQTT bridge: {args.rate:g}/s out for {duration:g} s, {count} in from {args.publishers} units",
        "",
        "| what | measured | target | met |",
        "|---|---|---|---|",
    ]
    if "out" in rows:
        out = rows["out"]
        lines += [
            f"| out: events on MQTT / HTTP 201s | {out['posted'] - out['missing']} / {out['posted']} "
            f"({out['failed_posts']} POSTs failed) | all | {'yes' if not out['missing'] else 'NO'} |",
            f"| out: seq order (after dropping {out['repeats']} repeats), gaps | "
            f"{'in order' if out['in_order'] else 'OUT OF ORDER'}, {out['gaps']} gaps | in order | "
            f"{'yes' if out['in_order'] else 'NO'} |",
            f"| out: HTTP answer -> subscriber, p50 / p99 / max | {out['p50']:.1f} / {out['p99']:.1f} / "
            f"{out['max']:.1f} ms | p99 < 200 ms | {'yes' if out['p99'] < 200 else 'NO'} |",
        ]
    if "http" in rows:
        http, mqtt_ = rows["http"], rows["mqtt"]
        http_ms, mqtt_ms = per_detection(http, count), per_detection(mqtt_, count)
        ratio = mqtt_ms / http_ms
        lines += [
            f"| in: stored over MQTT / HTTP | {mqtt_['stored']} / {http['stored']} of {count} each | all, once | "
            f"{'yes' if mqtt_['stored'] == http['stored'] == count else 'NO'} |",
            f"| in: CPU per detection (server + bridge + MariaDB), HTTP | {http_ms:.2f} ms "
            f"(server {1000 * http['server'] / count:.2f}, bridge {1000 * http['bridge'] / count:.2f}, "
            f"MariaDB {1000 * http['mariadb'] / count:.2f}) | | |",
            f"| in: CPU per detection (server + bridge + MariaDB), MQTT | {mqtt_ms:.2f} ms "
            f"(server {1000 * mqtt_['server'] / count:.2f}, bridge {1000 * mqtt_['bridge'] / count:.2f}, "
            f"MariaDB {1000 * mqtt_['mariadb'] / count:.2f}; Mosquitto {1000 * mqtt_['mosquitto'] / count:.2f} "
            f"not counted) | | |",
            f"| in: MQTT / HTTP CPU per detection | {ratio:.2f}x | <= 1.2x | {'yes' if ratio <= 1.2 else 'NO'} |",
        ]
    if "drill" in rows:
        drill = rows["drill"]
        lines.append(
            f"| drill ({'; '.join(drill['events'])}): stored | {drill['stored']} of {count} (unique key: none "
            f"twice) | all, none twice | {'yes' if drill['stored'] == count else 'NO'} |"
        )
    if "out" in rows:
        lines += [
            "",
            f"Other processes on the machine during the out part: {rows['out'].get('other') or 0:.0f}% of a core.",
        ]
    if "http" in rows:
        lines += [
            "",
            f"Other processes on the machine: {rows['http'].get('other') or 0:.0f}% of a core during the HTTP run, "
            f"{rows['mqtt'].get('other') or 0:.0f}% during the MQTT run (MariaDB's CPU includes what others asked "
            "of it).",
        ]
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    main()
