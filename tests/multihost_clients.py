"""The clients of tests/multihost.py's deployment, each in a thread of its own,
talking only to the load balancer.

`Follower` is a viewer's socket that keeps the reconnect policy of
docs/websocket.md: remember the last seq, ping when the line is quiet and count
the connection dead when no answer comes, reconnect with back-off and
`?after=<last seq>`. `Camera` is an edge unit that posts detections one after
another and posts a failed one again (same body) until it is stored.
"""

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from conftest import detection_body
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

EVENT_TYPES = ("new_detection", "deletion", "alert")


@dataclass
class Connection:
    """One socket of a Follower: which host served it, when it opened and closed."""

    host: str
    opened: float
    closed: float | None = None
    first_seq: int | None = None


class Follower(threading.Thread):
    """A viewer following the feed through the load balancer, reconnecting as documented."""

    def __init__(
        self,
        ws_url: str,
        token: str,
        *,
        ping_every: float = 1.0,
        pong_within: float = 2.0,
        backoff: tuple[float, float] = (0.05, 1.0),
    ):
        super().__init__(daemon=True)
        self.ws_url = ws_url
        self.token = token
        self.ping_every = ping_every
        self.pong_within = pong_within
        self.backoff = backoff
        self.seqs: list[int] = []
        self.connections: list[Connection] = []
        self.failures: list[str] = []
        self._stopping = threading.Event()
        self._changed = threading.Condition()

    @property
    def last_seq(self) -> int | None:
        return self.seqs[-1] if self.seqs else None

    @property
    def host(self) -> str | None:
        """The host serving the open connection, if one is open."""
        with self._changed:
            if self.connections and self.connections[-1].closed is None:
                return self.connections[-1].host
            return None

    def run(self):
        delay = self.backoff[0]
        while not self._stopping.is_set():
            try:
                self._follow()
                delay = self.backoff[0]
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                with self._changed:
                    if self.connections and self.connections[-1].closed is None:
                        self.connections[-1].closed = time.monotonic()
                    self._changed.notify_all()
                # Back-off with jitter between attempts, as docs/websocket.md asks of clients.
                self._stopping.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.backoff[1])
            except Exception as exc:  # a reset, or a fault of this client: the waiters report it
                self.failures.append(f"{type(exc).__name__}: {exc}")
                with self._changed:
                    self._changed.notify_all()
                return

    def _follow(self):
        query = {"token": self.token}
        if self.last_seq is not None:
            query["after"] = self.last_seq
        with connect(f"{self.ws_url}/ws?{urlencode(query)}", open_timeout=5, close_timeout=1) as ws:
            with self._changed:
                host = ws.response.headers.get("X-Served-By", "?")
                self.connections.append(Connection(host=host, opened=time.monotonic()))
                self._changed.notify_all()
            waiting_for_pong_since = None
            while not self._stopping.is_set():
                try:
                    text = ws.recv(timeout=self.pong_within if waiting_for_pong_since else self.ping_every)
                except TimeoutError:
                    if waiting_for_pong_since is not None:
                        raise TimeoutError(f"no answer to a ping within {self.pong_within:g} s") from None
                    ws.send(json.dumps({"type": "ping"}))
                    waiting_for_pong_since = time.monotonic()
                    continue
                waiting_for_pong_since = None  # anything from the server shows the line is alive
                message = json.loads(text)
                if message.get("type") in EVENT_TYPES:
                    with self._changed:
                        if self.connections[-1].first_seq is None:
                            self.connections[-1].first_seq = message["seq"]
                        self.seqs.append(message["seq"])
                        self._changed.notify_all()
                elif message.get("type") == "reset":
                    raise AssertionError(f"the server could not resume this client: {message}")

    def wait_until(self, check, timeout: float, what: str):
        """Wait for `check(self)` to hold, woken by each event and connection change."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not check(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.is_alive():
                    raise AssertionError(
                        f"{what} within {timeout:g} s; connections {self.connections}, failures {self.failures[-5:]}"
                    )
                self._changed.wait(remaining)

    def wait_for_seq(self, seq: int, timeout: float = 30.0):
        self.wait_until(lambda f: f.seqs and f.seqs[-1] >= seq, timeout, f"no event up to seq {seq}")

    def stop(self):
        self._stopping.set()
        self.join(timeout=10)


@dataclass
class Posted:
    id: int
    status: int
    host: str
    attempts: int


@dataclass(eq=False)
class Camera(threading.Thread):
    """An edge unit posting detections through the load balancer, one at a
    time, each posted again (the same body: a replay stores nothing twice)
    until the server has stored it."""

    url: str
    device_key: str
    camera: str = "gate-1"
    pause: float = 0.0
    retry_after: float = 0.1
    stored: list[Posted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        super().__init__(daemon=True)
        self._stopping = threading.Event()
        self._stored_more = threading.Condition()

    def run(self):
        headers = {"Authorization": f"Token {self.device_key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=5) as http:
            while not self._stopping.is_set():
                posted = self.post_until_stored(http, self.body())
                if posted is None:
                    return  # stopped while posting it again
                with self._stored_more:
                    self.stored.append(posted)
                    self._stored_more.notify_all()
                if self.pause:
                    self._stopping.wait(self.pause)

    def body(self) -> dict:
        return detection_body(id=f"mh-{uuid.uuid4().hex[:12]}", camera=self.camera, vehicle_img=...)

    def post_until_stored(self, http: httpx.Client, body: dict) -> Posted | None:
        attempts = 0
        while not self._stopping.is_set():
            attempts += 1
            try:
                response = http.post("/api/detect", json=body)
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                if response.status_code in (200, 201):
                    return Posted(
                        response.json()["id"], response.status_code, response.headers.get("X-Served-By", "?"), attempts
                    )
                if response.status_code < 500 and response.status_code != 429:
                    self.errors.append(f"refused: {response.status_code} {response.text}")
                    raise AssertionError(f"the server refused a good detection: {response.status_code} {response.text}")
                self.errors.append(f"{response.status_code} from {response.headers.get('X-Served-By', 'the balancer')}")
            self._stopping.wait(self.retry_after)
        return None

    def wait_for_stored(self, count: int, timeout: float):
        with self._stored_more:
            if not self._stored_more.wait_for(lambda: len(self.stored) >= count, timeout):
                raise AssertionError(f"the camera stored {len(self.stored)} of {count}: {self.errors[-5:]}")

    def stop(self):
        self._stopping.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the camera did not stop"
