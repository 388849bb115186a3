"""Fixtures shared by the suite.

The suite runs on whatever DATABASE_URL and REDIS_URL name; `make test` names
the real MariaDB and Redis and sets VM_REQUIRE_SERVICES=1, so a run that
silently fell back to SQLite or the in-memory layer fails instead of passing.
Those are the machine's own servers, shared with other work: the run fails if
it disturbed them (tests/machine_guard.py).
"""

import base64
import io
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from machine_guard import watches_for
from PIL import Image
from places import HERE, Place
from processes import end_process

from detections.core.events import PUBLISH_GROUP
from detections.feed import publisher
from detections.simulation.camera import make_detection

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    if os.environ.get("VM_REQUIRE_SERVICES") == "1":
        engine = settings.DATABASES["default"]["ENGINE"]
        layer = settings.CHANNEL_LAYERS["default"]["BACKEND"]
        if engine != "django.db.backends.mysql" or "channels_redis" not in layer:
            raise pytest.UsageError(
                f"VM_REQUIRE_SERVICES=1 but the suite is set up for {engine} and {layer}; "
                "set DATABASE_URL=mysql://... and REDIS_URL=redis://..."
            )


# --- The machine's services, left alone -------------------------------------------------------

WATCHES = pytest.StashKey[list]()
DISTURBED = pytest.StashKey[list]()


def pytest_sessionstart(session):
    session.config.stash[WATCHES] = watches_for(settings)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    watches = session.config.stash.get(WATCHES, [])
    found = [problem for watch in watches for problem in watch.disturbances()]
    for watch in watches:
        watch.close()
    session.config.stash[DISTURBED] = found
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    found = config.stash.get(DISTURBED, [])
    if found:
        terminalreporter.section("the machine's own services were disturbed during this run", sep="!", red=True)
        for problem in found:
            terminalreporter.line(problem, red=True)
        terminalreporter.line("A test must break services of its own (tests/outages.py), never these.", red=True)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    """Rate limits are tested where they are the subject (test_auth.py) and set
    there; elsewhere a test may post as fast as it likes. Passwords hash fast."""
    settings.DEVICE_RATE_LIMIT = "1000000/s"
    # A key revoked in a test is refused at once here; the delay has tests of its own.
    settings.DEVICE_KEY_CACHE_SECONDS = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Each test reads the watch-lists and rules of its own database
    # afresh, once (a rolled-back database repeats revision numbers, so a
    # snapshot of the previous test's could pass for current); tests of edits
    # taking effect set a short interval themselves.
    from detections.alerts import config

    config.forget()
    settings.ALERT_CONFIG_CHECK_SECONDS = 3600


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path_factory):
    """Each test writes snapshots to a folder of its own."""
    settings.MEDIA_ROOT = str(tmp_path_factory.mktemp("media"))
    return Path(settings.MEDIA_ROOT)


# --- Payloads ------------------------------------------------------------------------------


def image_bytes(fmt="JPEG", size=(64, 48), color=(200, 30, 30), **save_args) -> bytes:
    out = io.BytesIO()
    mode = "RGBA" if fmt == "PNG" else "RGB"
    Image.new(mode, size, color).save(out, fmt, **save_args)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def detection_body(**overrides) -> dict:
    """A valid legacy-shape body with a small JPEG; override any field."""
    body = {
        "id": "trk-0042",
        "vehicle_type": "car",
        "vehicle_img": b64(image_bytes()),
        "time": "2026-11-24T08:15:30.120Z",
        "camera": "gate-1",
        "confidence": 0.91,
        "bbox": [412, 220, 160, 96],
        "plate": "34ABC123",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


def stored_files(media_root: Path) -> list[Path]:
    return sorted(p for p in media_root.rglob("*") if p.is_file())


MOMENT = datetime(2026, 11, 24, 8, 15, 30, 120000, tzinfo=UTC)


def store_detection(
    tracking_id="trk-0042",
    *,
    vehicle_type="car",
    camera="gate-1",
    detected_at=MOMENT,
    plate="",
    confidence=None,
    bbox=None,
    size=(64, 48),
    with_image=True,
):
    """A detection stored the way the API stores it, snapshot and thumbnail on disk."""
    from detections.core import images
    from detections.core.writes import detection_create
    from detections.models import Camera

    return detection_create(
        camera=Camera.objects.get_or_create(name=camera)[0],
        tracking_id=tracking_id,
        vehicle_type=vehicle_type,
        detected_at=detected_at,
        image=images.verify(image_bytes(size=size)) if with_image else None,
        plate=plate,
        confidence=confidence,
        bbox=bbox,
    ).detection


@pytest.fixture
def simulated_detection():
    """Photo-like detections as the simulated camera makes them."""
    rng = random.Random(7)
    counter = iter(range(1, 10**6))
    base = datetime.now(UTC) - timedelta(minutes=5)

    def make(camera="gate-1", **overrides):
        n = next(counter)
        body = make_detection(sequence=n, camera=camera, rng=rng, moment=base + timedelta(milliseconds=n))
        body.update(overrides)
        return body

    return make


# --- Who is asking ----------------------------------------------------------------------------

CAMERAS = ("gate-1", "gate-2", "yard")


@dataclass(frozen=True)
class Credentials:
    device: str  # a device key bound to every camera in CAMERAS
    viewer: str  # a user token without any permission
    staff: str  # a staff user's token, allowed to delete

    @staticmethod
    def header(secret: str) -> dict:
        return {"Authorization": f"Token {secret}"}


def make_user_token(username: str, *, staff: bool = False) -> str:
    from django.contrib.auth.models import Permission, User
    from rest_framework.authtoken.models import Token

    user = User.objects.create_user(username, is_staff=staff)
    if staff:
        user.user_permissions.add(Permission.objects.get(codename="delete_detection"))
    return Token.objects.create(user=user).key


@pytest.fixture
def cameras(db):
    from detections.models import Camera

    return {name: Camera.objects.create(name=name) for name in CAMERAS}


@pytest.fixture
def credentials(cameras) -> Credentials:
    from detections.core.device_keys import issue_device_key

    _, device = issue_device_key(cameras=list(cameras.values()), label="test unit")
    return Credentials(device=device, viewer=make_user_token("viewer"), staff=make_user_token("staff", staff=True))


def api_client(secret: str | None = None):
    from rest_framework.test import APIClient

    client = APIClient()
    if secret:
        client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


@pytest.fixture
def device_client(credentials):
    """An edge unit: may post for gate-1, gate-2 and yard."""
    return api_client(credentials.device)


@pytest.fixture
def viewer_client(credentials):
    return api_client(credentials.viewer)


@pytest.fixture
def staff_client(credentials):
    return api_client(credentials.staff)


# --- Watch-lists -----------------------------------------------------------------------------


@pytest.fixture
def manager(db):
    """An API client of a user who may manage watch-lists and alert rules."""
    from alert_helpers import client_with

    return client_with("manager", "manage_watchlists")


@pytest.fixture
def stolen(db):
    """An empty fuzzy watch-list."""
    from detections.models import Watchlist

    return Watchlist.objects.create(name="stolen vehicles")


# --- The channel layer, seen from a test ----------------------------------------------------


class FeedListener:
    """A channel in the feed group, as a socket's consumer would have."""

    def __init__(self):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(PUBLISH_GROUP, self.channel)
        self.pending: list[dict] = []  # events of a channel-layer message not yet returned

    def receive(self, timeout=5.0) -> dict:
        """The next event's socket message."""

        async def receive():
            import asyncio

            return await asyncio.wait_for(self.layer.receive(self.channel), timeout)

        if not self.pending:
            self.pending = async_to_sync(receive)()["events"]
        return json.loads(self.pending.pop(0)["text"])

    def assert_nothing_else(self):
        """Nothing more was published: a marker sent now is the next message (the
        layer delivers a group's messages in the order they were sent)."""
        marker = {"kind": "marker", "seq": 0, "text": json.dumps({"type": "marker"})}
        message = {"type": publisher.FEED_MESSAGE_TYPE, "events": [marker]}
        async_to_sync(self.layer.group_send)(PUBLISH_GROUP, message)
        assert self.receive() == {"type": "marker"}

    def close(self):
        async_to_sync(self.layer.group_discard)(PUBLISH_GROUP, self.channel)


@pytest.fixture
def feed_listener():
    listener = FeedListener()
    yield listener
    listener.close()


# (tracking id, camera, vehicle type, time, plate)
TRAFFIC = [
    ("trk-1", "gate-1", "car", "2026-11-24T08:00:00Z", "34ABC123"),
    ("trk-2", "gate-1", "truck", "2026-11-24T08:30:00Z", "06XYZ77"),
    ("trk-3", "gate-2", "car", "2026-11-24T09:00:00Z", "35KLM900"),
    ("trk-4", "gate-2", "bus", "2026-11-24T09:30:00Z", "34ABC123"),
    ("trk-1", "gate-2", "van", "2026-11-24T10:00:00Z", ""),
]


@pytest.fixture
def traffic(device_client) -> list[dict]:
    """TRAFFIC posted through the API, as answered, in posting order (oldest first)."""
    from helpers import post_detection

    return [
        post_detection(device_client, id=tracking_id, camera=camera, vehicle_type=vehicle_type, time=time, plate=plate)
        for tracking_id, camera, vehicle_type, time, plate in TRAFFIC
    ]


# --- A real server process --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The URL of the test database, for a server process to share it."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = quote(db["PASSWORD"] or "", safe="")
    return f"mysql://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


class ServerProcess:
    """The ASGI application in a process of its own, served by the production
    command (docker-compose.yml's `web`) or, with kind="daphne", by daphne."""

    def __init__(
        self,
        media_root: Path,
        credentials: Credentials,
        extra_env: dict | None = None,
        *,
        kind: str = "production",
        place: Place = HERE,
        port: int | None = None,
    ):
        self.kind = kind
        self.place = place
        self.port = port or free_port()
        self.media_root = media_root
        self.credentials = credentials
        self.base_url = f"http://{place.host}:{self.port}"
        self.ws_url = f"ws://{place.host}:{self.port}"
        self.metrics_token = secrets.token_urlsafe()
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(media_root),
            "DJANGO_DEBUG": "false",
            # The test process's key, so sessions it logs in are valid on the server.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "DEVICE_RATE_LIMIT": "1000000/s",
            # Plain HTTP on loopback: no TLS proxy in front.
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            # window.dashboard and the reconnect hold, which tests/test_dashboard.py
            # drives the page with (a test of the default passes "false").
            "DASHBOARD_TEST_HOOKS": "true",
            "PYTHONUNBUFFERED": "1",
            # What Prometheus brings to /metrics (`metrics`).
            "METRICS_TOKEN": self.metrics_token,
            **(extra_env or {}),
        }
        # Kept for processes that work beside the server on the same database and layer.
        self.env = env
        self.output: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._ready.wait(timeout=30) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.output))

    def command(self) -> list[str]:
        if self.kind == "daphne":
            return [
                *self.place.launcher,
                sys.executable,
                "-m",
                "daphne",
                "-b",
                self.place.host,
                "-p",
                str(self.port),
                "vehicle_monitor.asgi:application",
            ]
        # docker-compose.yml's command for the web service, on this port.
        production = compose_web_command()
        assert production[0] == "uvicorn", production
        return [
            *self.place.launcher,
            sys.executable,
            "-m",
            *production,
            "--host",
            self.place.host,
            "--port",
            str(self.port),
        ]

    def _read_output(self):
        for line in self.process.stdout:
            self.output.append(line)
            if "Listening on TCP address" in line or "Uvicorn running on" in line:
                self._ready.set()
        self._ready.set()  # the process ended; the waiter checks poll()

    def http(self, secret: str | None = None) -> httpx.Client:
        headers = Credentials.header(secret) if secret else {}
        return httpx.Client(base_url=self.base_url, timeout=10, headers=headers)

    def metrics(self) -> httpx.Response:
        """GET /metrics as Prometheus scrapes it, with the process's METRICS_TOKEN."""
        headers = {"Authorization": f"Bearer {self.metrics_token}"}
        return httpx.get(f"{self.base_url}/metrics", headers=headers, timeout=10)

    def device(self) -> httpx.Client:
        """An edge unit's client (device key bound to gate-1, gate-2, yard)."""
        return self.http(self.credentials.device)

    def staff(self) -> httpx.Client:
        """A staff member's client: reads and deletes."""
        return self.http(self.credentials.staff)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
        print("--- server output ---\n" + "".join(self.output))  # shown when the test fails

    def stop(self):
        end_process(self.process)


class CommandProcess:
    """A management command in a process of its own, on the test database, as
    production runs its workers (docker-compose.yml's services): a subclass
    names the command, the start of the line it prints once it runs, and
    settings of its own."""

    command = ""
    ready = ""
    extra_env: dict = {}

    def __init__(self, *arguments: str, env: dict | None = None, launcher: tuple[str, ...] = ()):
        self.output: list[str] = []
        self._started = threading.Event()
        self.process = subprocess.Popen(
            [*launcher, sys.executable, "manage.py", self.command, *arguments],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": database_url(),
                # The test process's key: the secrets it encrypted open in the worker.
                "DJANGO_SECRET_KEY": settings.SECRET_KEY,
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
                **(env or {}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._started.wait(timeout=30) or self.process.poll() not in (None, 0):
            self.kill()
            raise RuntimeError(f"{self.command} did not start:\n" + self.text())

    def _read_output(self):
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith(self.ready):
                self._started.set()
        self._started.set()

    def text(self) -> str:
        return "".join(self.output)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def terminate(self) -> int:
        """SIGTERM, as systemd and docker stop it; its exit status."""
        self.process.terminate()
        return self.wait()

    def kill(self):
        """SIGKILL: no chance to finish or record anything."""
        if self.alive:
            self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.kill()
        print(f"--- {self.command} output ---\n" + self.text())  # shown when the test fails


def compose_web_command() -> list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["web"]["command"]
    return command.split() if isinstance(command, str) else list(command)


@pytest.fixture
def server(request, transactional_db, _media_root, credentials):
    """The production server command in a real process, on the test database
    and the configured channel layer (daphne for the tests marked
    `on_every_server`).

    transactional_db: the server's writes are real commits, so tables are
    emptied after the test instead of rolled back.
    """
    with ServerProcess(_media_root, credentials, kind=getattr(request, "param", "production")) as process:
        yield process


@pytest.fixture
def drill(_media_root):
    """The production server command on a MariaDB and a Redis of the test's own,
    for a test to stop, start or hang (tests/outages.py): never the machine's."""
    from outages import running_drill

    with running_drill(_media_root) as running:
        yield running


# A small named set of tests runs on daphne too: `manage.py runserver` and some
# operators serve the application with it.
on_every_server = pytest.mark.parametrize("server", ["production", "daphne"], indirect=True)
