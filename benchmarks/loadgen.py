"""The load generator of benchmarks/run.py: one asyncio process per role.

    loadgen.py listen  --url ws://127.0.0.1:PORT/ws [--url ...] --sockets N --prefix P --out FILE
    loadgen.py post    --url http://127.0.0.1:PORT [--url ...] --pool FILE --prefix P --out FILE
                       (--concurrency 8 | --rate 300) --duration S
    loadgen.py batch   --url ... --pool FILE --prefix P --out FILE --concurrency 2 --batch-size 100 --duration S
    loadgen.py stats   --url ... --out FILE --requests N [--paths FILE]
    (post: --plates FILE, a JSON list, sets each body's plate, the n-th POST the n-th plate, cycling)

It is not meant to be run by hand: run.py starts it, talks to it over stdin and
stdout (one JSON object a line) and reads its samples back from --out.

Delivery latency needs no shared state between processes: every POST gets a
unique tracking id that ends with the monotonic clock (ns) at which its request
was sent, `<prefix>-<n>-<ns>`. CLOCK_MONOTONIC is one clock for every process
of the machine, so a listener in another process computes receive - send from
the tracking id alone.

Listeners are kept cheap: a message is never parsed as JSON; the tracking id is
sliced out of the text (the server sends compact JSON), and only events of the
current row are counted.
"""

import argparse
import asyncio
import errno
import json
import random
import resource
import sys
import time
from array import array
from datetime import UTC, datetime, timedelta

try:
    import uvloop
except ImportError:  # pragma: no cover - the benchmark installs it
    uvloop = None

import aiohttp

TID_KEY = '"tracking_id":"'


def raise_open_files_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def read_stdin_line() -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.readline)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LagMonitor:
    """How late the event loop wakes up: a starved generator shows up here."""

    def __init__(self, interval=0.01):
        self.interval = interval
        self.samples = array("d")
        self.task = None

    async def _run(self):
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval)
            self.samples.append((time.monotonic() - start - self.interval) * 1000)

    def start(self):
        self.task = asyncio.ensure_future(self._run())

    def summary(self) -> dict:
        if self.task:
            self.task.cancel()
        values = sorted(self.samples)
        if not values:
            return {"lag_p99_ms": 0.0, "lag_max_ms": 0.0}
        return {"lag_p99_ms": values[int(0.99 * (len(values) - 1))], "lag_max_ms": values[-1]}


# --- Listeners ---------------------------------------------------------------------------------


class Listener:
    __slots__ = ("index", "received", "duplicates", "closed", "other", "latencies")

    def __init__(self, index):
        self.index = index
        self.received: set[str] = set()
        self.duplicates = 0
        self.closed = False
        self.other = 0  # messages that were not events of the current row
        self.latencies = None


class ListenGroup:
    def __init__(self, args):
        self.args = args
        self.prefix = args.prefix  # tracking ids of the current row start with this
        self.listeners = [Listener(i) for i in range(args.sockets)]
        self.latencies = array("d")
        self.deflate = []
        self.errors = []
        self.tasks = []

    def on_text(self, listener: Listener, text, now_ns: int):
        # Compact JSON from the server: slice the tracking id out, no json.loads.
        start = text.find(TID_KEY)
        if start < 0:
            listener.other += 1
            return
        start += len(TID_KEY)
        end = text.find('"', start)
        tid = text[start:end]
        if not tid.startswith(self.prefix):
            listener.other += 1
            return
        if tid in listener.received:
            listener.duplicates += 1
            return
        listener.received.add(tid)
        sent_ns = int(tid[tid.rfind("-") + 1 :])
        self.latencies.append((now_ns - sent_ns) / 1e6)

    async def run_aiohttp(self, session, url, listener, opened):
        async with session.ws_connect(
            url, compress=15 if self.args.deflate else 0, max_msg_size=0, autoping=True, heartbeat=None
        ) as ws:
            self.deflate.append(bool(ws.compress))
            opened.set_result(True)
            monotonic_ns = time.monotonic_ns
            on_text = self.on_text
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    on_text(listener, msg.data, monotonic_ns())
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        listener.closed = True

    async def run_websockets(self, url, listener, opened):
        import websockets

        async with websockets.connect(
            url,
            compression="deflate" if self.args.deflate else None,
            max_size=None,
            open_timeout=60,
            ping_interval=None,
            max_queue=None,
        ) as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            self.deflate.append("permessage-deflate" in extensions)
            opened.set_result(True)
            monotonic_ns = time.monotonic_ns
            on_text = self.on_text
            try:
                while True:
                    # decode=False: bytes, no UTF-8 decoding; the slicing works the same.
                    data = await ws.recv(decode=False)
                    on_text(listener, data.decode(), monotonic_ns())
            except websockets.ConnectionClosed:
                pass
        listener.closed = True

    async def main(self):
        raise_open_files_limit()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, connect=60, sock_connect=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            gate = asyncio.Semaphore(self.args.connect_concurrency)
            urls = self.args.url
            started = time.monotonic()
            coros = []
            token = load_auth(self.args.auth)["viewer_token"]
            query = f"?token={token}" if token else ""
            for listener in self.listeners:
                url = urls[listener.index % len(urls)] + "/ws" + query
                coros.append(self._connect_and_mark(session, url, listener, gate))
            self.tasks = [t for t in await asyncio.gather(*coros) if t is not None]
            emit(
                {
                    "ready": True,
                    "connected": len(self.tasks),
                    "deflate": sum(self.deflate),
                    "connect_seconds": time.monotonic() - started,
                    "errors": self.errors[:5],
                }
            )
            while True:
                line = (await read_stdin_line()).strip()
                if not line:
                    break  # the orchestrator went away
                command = json.loads(line)
                if command.get("quit"):
                    break
                if "prefix" in command and "expected" not in command:
                    # A new row: count only its events from now on.
                    self.prefix = command["prefix"]
                    for listener in self.listeners:
                        listener.received = set()
                        listener.duplicates = 0
                        listener.other = 0
                    self.latencies = array("d")
                    self.lag = LagMonitor()
                    self.lag.start()
                    self.cpu_start = cpu_seconds()
                    self.wall_start = time.monotonic()
                    emit({"armed": True})
                    continue
                await self.drain(command["expected"], command.get("drain", 10.0))
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _connect_and_mark(self, session, url, listener, gate):
        async with gate:
            for attempt in range(5):
                opened = asyncio.get_running_loop().create_future()
                if self.args.client == "websockets":
                    task = asyncio.ensure_future(self.run_websockets(url, listener, opened))
                else:
                    task = asyncio.ensure_future(self.run_aiohttp(session, url, listener, opened))
                done, _ = await asyncio.wait({task, opened}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
                if opened in done:
                    return task
                if task in done:
                    exc = task.exception()
                    self.errors.append(f"connect: {type(exc).__name__ if exc else 'closed'}: {exc}")
                else:
                    task.cancel()
                    self.errors.append("connect: timed out after 60 s")
                await asyncio.sleep(0.5 * (attempt + 1))
            return None

    async def drain(self, expected: int, drain_seconds: float):
        """Wait until every socket has every expected event, or the drain period ends."""
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline:
            if all(len(listener.received) >= expected or listener.closed for listener in self.listeners):
                break
            await asyncio.sleep(0.05)
        wall = time.monotonic() - self.wall_start
        cpu = cpu_seconds() - self.cpu_start
        with open(self.args.out, "wb") as out:
            self.latencies.tofile(out)
        received = [len(listener.received) for listener in self.listeners]
        emit(
            {
                "done": True,
                "sockets": len(self.listeners),
                "received_total": sum(received),
                "missing": sum(max(0, expected - n) for n in received),
                "extra": sum(max(0, n - expected) for n in received),
                "duplicates": sum(listener.duplicates for listener in self.listeners),
                "closed": sum(listener.closed for listener in self.listeners),
                "sockets_complete": sum(n >= expected for n in received),
                "samples": len(self.latencies),
                "cpu_seconds": cpu,
                "wall_seconds": wall,
                **self.lag.summary(),
            }
        )


# --- Posters -----------------------------------------------------------------------------------


def load_auth(path) -> dict:
    if not path:
        return {"device_keys": {}, "viewer_token": None}
    with open(path) as f:
        return json.load(f)


def device_headers(auth: dict, camera: str) -> dict:
    headers = {"Content-Type": "application/json"}
    key = auth["device_keys"].get(camera)
    if key:
        headers["Authorization"] = f"Token {key}"
    return headers


def load_pool(path, auth, with_plates=False):
    with open(path) as f:
        pool = json.load(f)
    # Pre-split every body around the fields that change per request, so a
    # request costs a few concatenations, not a json.dumps of 45 KB. With
    # plates, the part after the time is split again around the plate.
    parts = []
    for item in pool:
        body = dict(item)
        body["id"] = "@@ID@@"
        body["time"] = "@@TIME@@"
        if with_plates:
            body["plate"] = "@@PLATE@@"
        text = json.dumps(body, separators=(",", ":"))
        before_id, rest = text.split("@@ID@@")
        between, after_time = rest.split("@@TIME@@")
        tail = tuple(p.encode() for p in after_time.split("@@PLATE@@")) if with_plates else after_time.encode()
        parts.append((before_id.encode(), between.encode(), tail, device_headers(auth, item["camera"])))
    return parts


def exception_kind(exc: BaseException) -> str:
    """A client exception's kind for the summary: its class, what it wraps, its errno.
    aiohttp's ServerDisconnectedError: the connection closed with no answer;
    ClientOSError [ECONNRESET]: a reset; TimeoutError: no answer in time."""
    kind = type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, BaseException) and type(cause) is not type(exc):
        kind += f" <- {type(cause).__name__}"
    number = getattr(exc, "errno", None) or getattr(cause, "errno", None)
    if number in errno.errorcode:
        kind += f" [{errno.errorcode[number]}]"
    return kind


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Poster:
    def __init__(self, args):
        self.args = args
        self.latencies = array("d")
        self.statuses: dict[str, int] = {}
        self.errors: list[str] = []
        # Every client exception by kind, and every refusal by status and by
        # who answered it (a host, or the load balancer itself), with its Retry-After.
        self.exceptions: dict[str, int] = {}
        self.refusals: dict[str, int] = {}
        self.created = 0
        self.n = 0
        self.late = array("d")  # open loop: how late each send started, ms
        self.shed = 0  # open loop: sends skipped because max_in_flight requests were waiting
        self.plates: list[bytes] | None = None
        if args.plates:
            with open(args.plates) as f:
                self.plates = [json.dumps(p)[1:-1].encode() for p in json.load(f)]

    def next_body(self, pool, rng):
        """A body with a fresh tracking id (which ends with its send time) and its headers."""
        self.n += 1
        before_id, between, after_time, headers = pool[rng.randrange(len(pool))]
        sent_ns = time.monotonic_ns()
        tid = f"{self.args.prefix}-{self.n}-{sent_ns}".encode()
        if self.plates is not None:
            before_plate, after_plate = after_time
            plate = self.plates[(self.n - 1) % len(self.plates)]
            return before_id + tid + between + now_iso().encode() + before_plate + plate + after_plate, headers
        return before_id + tid + between + now_iso().encode() + after_time, headers

    async def one(self, session, url, request, path: str):
        body, headers = request
        started = time.monotonic()
        try:
            async with session.post(url + path, data=body, headers=headers) as response:
                payload = await response.read()
                status = response.status
                if status not in (200, 201):
                    self.count_refusal(status, response.headers)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            kind = exception_kind(exc)
            self.exceptions[kind] = self.exceptions.get(kind, 0) + 1
            status = "exception"
            payload = b""
        self.latencies.append((time.monotonic() - started) * 1000)
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if status == 201:
            self.created += 1
        elif status == 200 and path.endswith("batch/"):
            self.created += json.loads(payload).get("created", 0)
        elif len(self.errors) < 5 and status != 201:
            self.errors.append(f"{status}: {payload[:200]!r}")
        return status

    def count_refusal(self, status: int, headers):
        # "status|host|Retry-After": HAProxy names the host that answered
        # (X-Served-By); an answer without it came from the load balancer
        # itself, or from a host asked directly.
        key = f"{status}|{headers.get('X-Served-By', '')}|{headers.get('Retry-After', '')}"
        self.refusals[key] = self.refusals.get(key, 0) + 1

    async def main(self):
        raise_open_files_limit()
        args = self.args
        rng = random.Random(args.seed)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            urls = args.url
            self.auth = load_auth(args.auth)
            if args.mode in ("post", "batch"):
                pool = load_pool(args.pool, self.auth, with_plates=self.plates is not None)
            lag = LagMonitor()
            lag.start()
            emit({"go": True})
            cpu_start = cpu_seconds()
            started = time.monotonic()
            deadline = started + args.duration
            if args.mode == "stats":
                await self.run_stats(session, urls)
            elif args.mode == "batch":
                await asyncio.gather(
                    *(
                        self.batch_worker(session, urls[i % len(urls)], pool, random.Random(args.seed + i), deadline, i)
                        for i in range(args.concurrency)
                    )
                )
            elif args.rate:
                await self.open_loop(session, urls, pool, rng, started, deadline)
            else:
                await asyncio.gather(
                    *(
                        self.closed_worker(session, urls[i % len(urls)], pool, random.Random(args.seed + i), deadline)
                        for i in range(args.concurrency)
                    )
                )
            elapsed = time.monotonic() - started
            cpu = cpu_seconds() - cpu_start
        with open(args.out, "wb") as out:
            self.latencies.tofile(out)
        late = sorted(self.late)
        emit(
            {
                "done": True,
                "requests": len(self.latencies),
                "created": self.created,
                "statuses": self.statuses,
                "exceptions": self.exceptions,
                "refusals": self.refusals,
                "errors": self.errors[:5],
                "elapsed": elapsed,
                "cpu_seconds": cpu,
                "late_p99_ms": late[int(0.99 * (len(late) - 1))] if late else 0.0,
                "shed": self.shed,
                **lag.summary(),
            }
        )

    async def closed_worker(self, session, url, pool, rng, deadline):
        while time.monotonic() < deadline:
            await self.one(session, url, self.next_body(pool, rng), self.args.path)

    async def open_loop(self, session, urls, pool, rng, started, deadline):
        """Offer `rate` requests a second whatever the answers take (no coordinated omission)."""
        interval = 1.0 / self.args.rate
        pending = set()
        i = 0
        while True:
            due = started + i * interval
            if due >= deadline:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.late.append(max(0.0, time.monotonic() - due) * 1000)
            if len(pending) >= self.args.max_in_flight:
                # The server is far behind: a real fleet would keep sending, but
                # thousands of waiting requests measure nothing more. Count it.
                self.shed += 1
                i += 1
                continue
            task = asyncio.ensure_future(
                self.one(session, urls[i % len(urls)], self.next_body(pool, rng), self.args.path)
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        if pending:
            await asyncio.gather(*pending)

    async def batch_worker(self, session, url, pool, rng, deadline, worker):
        size = self.args.batch_size
        headers = device_headers(self.auth, "*")
        while time.monotonic() < deadline:
            body = b'{"detections":[' + b",".join(self.next_body(pool, rng)[0] for _ in range(size)) + b"]}"
            await self.one(session, url, (body, headers), "/api/detections/batch/")

    async def run_stats(self, session, urls):
        week_ago = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
        queries = [
            "/api/stats",
            "/api/stats?bucket=day&tz=Europe/Istanbul",
            f"/api/stats?camera=gate-2&vehicle_type=car&since={week_ago}T00:00:00Z",
        ]
        if self.args.paths:
            # Any GETs, in this order; their latencies are written in the same order.
            with open(self.args.paths) as f:
                queries = json.load(f)
        token = self.auth["viewer_token"]
        headers = {"Authorization": f"Token {token}"} if token else {}
        deadline = time.monotonic() + self.args.duration
        for i in range(self.args.requests):
            if time.monotonic() > deadline:
                break
            url = urls[i % len(urls)] + queries[i % len(queries)]
            started = time.monotonic()
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    status = response.status
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                status = "exception"
            self.latencies.append((time.monotonic() - started) * 1000)
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["listen", "post", "batch", "stats"])
    parser.add_argument("--url", action="append", required=True, help="base URL; repeat to spread over processes")
    parser.add_argument("--out", required=True)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--pool")
    parser.add_argument("--auth", help="JSON from bench_setup.py: device keys and a viewer token")
    parser.add_argument("--path", default="/api/detect")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--max-in-flight", type=int, default=128, help="open loop: most requests waiting at once")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--paths", help="stats: a JSON list of paths to GET in turn instead of the stats queries")
    parser.add_argument("--plates", help="post: a JSON list of plates, the n-th POST sending the n-th (cycling)")
    parser.add_argument("--sockets", type=int, default=0)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--client", choices=["aiohttp", "websockets"], default="aiohttp")
    parser.add_argument("--no-deflate", dest="deflate", action="store_false")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    if args.mode == "listen":
        asyncio.run(ListenGroup(args).main())
    else:
        asyncio.run(Poster(args).main())


if __name__ == "__main__":
    main()
