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


# docs/websocket.md's policy for a client: ping after this long without a
# message, count the connection dead when nothing answers within PONG_WITHIN,
# reconnect after a back-off from BACKOFF_FIRST doubling up to BACKOFF_LAST
# (with jitter) and `?after=<the last seq seen>`.
QUIET_SECONDS = 10.0
PONG_WITHIN = 5.0
BACKOFF_FIRST, BACKOFF_LAST = 0.05, 2.0
SEQ_KEY = '"seq":'
RESET_PREFIX = '{"type":"reset"'
PING = json.dumps({"type": "ping"})


class Listener:
    __slots__ = (
        "index",
        "url",
        "received",
        "duplicates",
        "connected",
        "other",
        "latencies",
        "last_seq",
        "closes",
        "resets",
        "failed_reconnects",
        "complete_at",
    )

    def __init__(self, index, url):
        self.index = index
        self.url = url  # without ?after=
        self.received: set[str] = set()
        self.duplicates = 0
        self.connected = False
        self.other = 0  # messages that were not events of the current row
        self.latencies = None
        self.last_seq: int | None = None  # where a reconnect resumes from
        self.closes: list[str] = []  # why each of its connections ended
        self.resets = 0  # `reset` answers: the log no longer held what it asked for
        self.failed_reconnects = 0  # attempts that never opened (the host gone, say)
        self.complete_at: float | None = None  # when it had every expected event (drain)


class ListenGroup:
    def __init__(self, args):
        self.args = args
        self.prefix = args.prefix  # tracking ids of the current row start with this
        self.listeners: list[Listener] = []
        self.latencies = array("d")
        self.deflate = []
        self.errors = []
        self.tasks = []

    def on_text(self, listener: Listener, text, now_ns: int):
        # Compact JSON from the server: slice the seq and the tracking id out, no json.loads.
        at = text.find(SEQ_KEY)
        if at >= 0:
            at += len(SEQ_KEY)
            end = at
            while text[end].isdigit():
                end += 1
            # Every event moves the resume point, whatever row it belongs to; a
            # reset (the log no longer holds what was asked) moves it too.
            listener.last_seq = int(text[at:end])
            if text.startswith(RESET_PREFIX):
                listener.resets += 1
                return
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

    def resume_url(self, listener: Listener) -> str:
        if listener.last_seq is None:
            return listener.url
        return f"{listener.url}{'&' if '?' in listener.url else '?'}after={listener.last_seq}"

    async def run_aiohttp(self, session, listener, opened) -> str:
        """One connection, until it ends; why it ended."""
        async with session.ws_connect(
            self.resume_url(listener),
            compress=15 if self.args.deflate else 0,
            max_msg_size=0,
            autoping=True,
            heartbeat=None,
        ) as ws:
            if not opened.done():
                self.deflate.append(bool(ws.compress))
                opened.set_result(True)
            listener.connected = True
            monotonic_ns = time.monotonic_ns
            on_text = self.on_text
            pinged = False
            while True:
                try:
                    msg = await ws.receive(timeout=PONG_WITHIN if pinged else QUIET_SECONDS)
                except TimeoutError:
                    if pinged:
                        return f"no answer to a ping within {PONG_WITHIN:g} s"
                    await ws.send_str(PING)
                    pinged = True
                    continue
                pinged = False
                if msg.type == aiohttp.WSMsgType.TEXT:
                    on_text(listener, msg.data, monotonic_ns())
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    reason = msg.extra if msg.type == aiohttp.WSMsgType.CLOSE and msg.extra else ""
                    return f"closed {ws.close_code} {reason}".strip()
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    return f"error: {exception_kind(ws.exception() or msg.data)}"

    async def run_websockets(self, session, listener, opened) -> str:
        """One connection, until it ends; why it ended."""
        import websockets

        async with websockets.connect(
            self.resume_url(listener),
            compression="deflate" if self.args.deflate else None,
            max_size=None,
            open_timeout=60,
            ping_interval=None,
            max_queue=None,
        ) as ws:
            if not opened.done():
                extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
                self.deflate.append("permessage-deflate" in extensions)
                opened.set_result(True)
            listener.connected = True
            monotonic_ns = time.monotonic_ns
            on_text = self.on_text
            pinged = False
            try:
                while True:
                    try:
                        # decode=False: bytes, no UTF-8 decoding; the slicing works the same.
                        data = await asyncio.wait_for(
                            ws.recv(decode=False), timeout=PONG_WITHIN if pinged else QUIET_SECONDS
                        )
                    except TimeoutError:
                        if pinged:
                            return f"no answer to a ping within {PONG_WITHIN:g} s"
                        await ws.send(PING)
                        pinged = True
                        continue
                    pinged = False
                    on_text(listener, data.decode(), monotonic_ns())
            except websockets.ConnectionClosed as closed:
                received = closed.rcvd
                return f"closed {received.code} {received.reason}".strip() if received else "closed 1006"

    async def follow(self, session, listener: Listener, opened):
        """Connections one after another, as docs/websocket.md asks of a client: each
        one that ends is recorded, and the next resumes after the last seq seen."""
        run = self.run_websockets if self.args.client == "websockets" else self.run_aiohttp
        delay = BACKOFF_FIRST
        while True:
            try:
                reason = await run(session, listener, opened)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not opened.done():
                    raise  # the first connection failed: _connect_and_mark tries again
                reason = f"error: {exception_kind(exc)}"
            else:
                delay = BACKOFF_FIRST
            if listener.connected:
                listener.closes.append(reason)
            else:
                listener.failed_reconnects += 1
            listener.connected = False
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_LAST)

    async def main(self):
        raise_open_files_limit()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, connect=60, sock_connect=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            gate = asyncio.Semaphore(self.args.connect_concurrency)
            urls = self.args.url
            started = time.monotonic()
            token = load_auth(self.args.auth)["viewer_token"]
            query = f"?token={token}" if token else ""
            self.listeners = [Listener(i, urls[i % len(urls)] + "/ws" + query) for i in range(self.args.sockets)]
            coros = [self._connect_and_mark(session, listener, gate) for listener in self.listeners]
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
                        listener.closes = []
                        listener.resets = 0
                        listener.failed_reconnects = 0
                        listener.complete_at = None
                        if command.get("seq") is not None and listener.last_seq is None:
                            # No event seen yet: a reconnect resumes from the head the orchestrator read.
                            listener.last_seq = command["seq"]
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

    async def _connect_and_mark(self, session, listener, gate):
        async with gate:
            for attempt in range(5):
                opened = asyncio.get_running_loop().create_future()
                task = asyncio.ensure_future(self.follow(session, listener, opened))
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
        """Wait until every socket has every expected event (resuming from the log
        after any reconnect), or the drain period ends; how long that took."""
        started = time.monotonic()
        deadline = started + drain_seconds
        while True:
            now = time.monotonic()
            for listener in self.listeners:
                if listener.complete_at is None and len(listener.received) >= expected:
                    listener.complete_at = now
            if all(listener.complete_at is not None for listener in self.listeners) or now >= deadline:
                break
            await asyncio.sleep(0.05)
        wall = time.monotonic() - self.wall_start
        cpu = cpu_seconds() - self.cpu_start
        with open(self.args.out, "wb") as out:
            self.latencies.tofile(out)
        received = [len(listener.received) for listener in self.listeners]
        closes: dict[str, int] = {}
        for listener in self.listeners:
            for reason in listener.closes:
                closes[reason] = closes.get(reason, 0) + 1
        complete = [listener.complete_at for listener in self.listeners if listener.complete_at is not None]
        emit(
            {
                "done": True,
                "sockets": len(self.listeners),
                "received_total": sum(received),
                "missing": sum(max(0, expected - n) for n in received),
                "extra": sum(max(0, n - expected) for n in received),
                "duplicates": sum(listener.duplicates for listener in self.listeners),
                # Connections that ended during the row, by why; each was resumed.
                "closed": sum(len(listener.closes) for listener in self.listeners),
                "closes": closes,
                "resets": sum(listener.resets for listener in self.listeners),
                "failed_reconnects": sum(listener.failed_reconnects for listener in self.listeners),
                "not_connected": sum(not listener.connected for listener in self.listeners),
                "sockets_complete": len(complete),
                # From the drain's start (the posting over) until the last socket had every event.
                "caught_up_seconds": max(complete) - started
                if len(complete) == len(self.listeners) and complete
                else None,
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
