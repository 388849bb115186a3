"""Redis servers and Sentinels of a test's own: own ports, own directories,
nothing saved to disk, never the machine's Redis on 6379.

`start_data_node()` starts one server (the outage drills break one of these:
tests/outages.py); `stop()` ends it and `start()` brings it back on the same port.

`sentinel_cluster()` starts a primary, one replica and three Sentinels (quorum
2) that fail over a second after the primary stops answering, on 127.0.0.1 or
on another host's address through that host's launcher (tests/multihost.py),
and returns once
every Sentinel sees the primary, the replica and the two other Sentinels; it
stops every process and removes every directory when the block ends, however
it ends. Waiting polls Redis's own answers against a deadline: a Sentinel
sends no event to await.
"""

import contextlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from conftest import free_port
from places import HERE, Place
from processes import end_process

MASTER_NAME = "vm-test-primary"
PASSWORD = "primary-secret"
SENTINEL_PASSWORD = "sentinel-secret"
QUORUM = 2
# The primary counts as down after this long without an answer; a failover that
# stalls is retried after twice FAILOVER_TIMEOUT_MS.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
START_TIMEOUT = 10.0


def wait_for(check: Callable[[], object], what: str, timeout: float = 20.0, interval: float = 0.05):
    """Poll `check` until it returns something true (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except redis.RedisError as exc:  # not up yet, or mid-failover
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout:g} s (last error: {last_error!r})")


@dataclass
class RedisProcess:
    """One redis-server, a data node or a Sentinel, on host:port."""

    host: str
    port: int
    directory: Path
    command: list[str]
    password: str
    process: subprocess.Popen | None = None
    _client: redis.Redis | None = None

    @property
    def url(self) -> str:
        """REDIS_URL for this server (database 0)."""
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        if self._client is None:
            # No retries: a poll that fails is simply repeated by its caller.
            self._client = redis.Redis(
                self.host,
                self.port,
                password=self.password,
                socket_timeout=2,
                socket_connect_timeout=2,
                retry=None,
                decode_responses=True,
            )
        return self._client

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text() if path.exists() else ""

    def kill(self):
        """SIGKILL: the host is gone, nothing is handed over or saved."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self._client is not None:
            self._client.close()
        end_process(self.process)

    def start(self):
        """Start the server, or start it again after `stop()`: same port, same settings."""
        self.process = subprocess.Popen(
            self.command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for(
                lambda: self.process.poll() is None and self.client().ping(),
                f"redis-server on {self.port}",
                START_TIMEOUT,
            )
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n{self.log()}") from None


def _start(directory: Path, arguments: list[str], password: str, place: Place) -> RedisProcess:
    port = free_port()
    log = directory / "redis.log"
    command = [*place.launcher, "redis-server", *arguments, "--port", str(port), "--logfile", str(log)]
    node = RedisProcess(host=place.host, port=port, directory=directory, command=command, password=password)
    node.start()
    return node


def start_data_node(directory: Path, replica_of: RedisProcess | None = None, place: Place = HERE) -> RedisProcess:
    """A primary, or a replica of `replica_of`; both ask for PASSWORD."""
    directory.mkdir()
    arguments = ["--bind", place.host, "--dir", str(directory), "--save", "", "--appendonly", "no"]
    arguments += ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
    # The replica's first sync at once, not after the default 5 s wait for more replicas.
    arguments += ["--repl-diskless-sync-delay", "0"]
    if replica_of is not None:
        arguments += ["--replicaof", replica_of.host, str(replica_of.port)]
    return _start(directory, arguments, PASSWORD, place)


def start_sentinel(directory: Path, primary: RedisProcess, place: Place = HERE) -> RedisProcess:
    """A Sentinel watching `primary`; it asks for SENTINEL_PASSWORD, and uses it with the other Sentinels."""
    directory.mkdir()
    # A file of its own: a Sentinel rewrites its configuration as it learns.
    config = directory / "sentinel.conf"
    config.write_text(
        "\n".join(
            [
                f"bind {place.host}",
                f"dir {directory}",
                f"requirepass {SENTINEL_PASSWORD}",
                f"sentinel monitor {MASTER_NAME} {primary.host} {primary.port} {QUORUM}",
                f"sentinel auth-pass {MASTER_NAME} {PASSWORD}",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                "",
            ]
        )
    )
    return _start(directory, [str(config), "--sentinel"], SENTINEL_PASSWORD, place)


@dataclass
class SentinelCluster:
    primary: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess] = field(default_factory=list)

    @property
    def sentinels_setting(self) -> str:
        """REDIS_SENTINELS for this cluster."""
        return ",".join(f"{sentinel.host}:{sentinel.port}" for sentinel in self.sentinels)

    def master_ports(self) -> set[int]:
        """The primary's port as each Sentinel reports it now."""
        ports = set()
        for sentinel in self.sentinels:
            address = sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
            ports.add(int(address[1]) if address else None)
        return ports

    def all_agree_on_the_primary(self, node: RedisProcess) -> bool:
        return self.master_ports() == {node.port} and _role(node) == "master"

    def logs(self) -> str:
        nodes = [self.primary, self.replica, *self.sentinels]
        return "\n".join(f"--- redis on {node.port} ---\n{node.log()}" for node in nodes)


def _role(node: RedisProcess) -> str:
    return node.client().info("replication")["role"]


def _sees_everything(sentinel: RedisProcess, cluster: SentinelCluster) -> bool:
    client = sentinel.client()
    replicas = client.sentinel_slaves(MASTER_NAME)
    others = client.sentinel_sentinels(MASTER_NAME)
    return (
        client.sentinel_get_master_addr_by_name(MASTER_NAME) == (cluster.primary.host, cluster.primary.port)
        and any(r["port"] == cluster.replica.port and not r["is_sdown"] for r in replicas)
        and len(others) == len(cluster.sentinels) - 1
    )


@contextlib.contextmanager
def sentinel_cluster(place: Place = HERE) -> Iterator[SentinelCluster]:
    with tempfile.TemporaryDirectory(prefix="vm-sentinel-") as root, contextlib.ExitStack() as running:
        base = Path(root)
        primary = start_data_node(base / "primary", place=place)
        running.callback(primary.stop)
        replica = start_data_node(base / "replica", replica_of=primary, place=place)
        running.callback(replica.stop)
        wait_for(
            lambda: replica.client().info("replication").get("master_link_status") == "up",
            "the replica's first sync",
        )
        cluster = SentinelCluster(primary, replica)
        for n in range(3):
            sentinel = start_sentinel(base / f"sentinel-{n}", primary, place)
            running.callback(sentinel.stop)
            cluster.sentinels.append(sentinel)
        # Sentinels find each other through hello messages on the primary, every 2 s.
        try:
            for sentinel in cluster.sentinels:
                wait_for(lambda s=sentinel: _sees_everything(s, cluster), f"Sentinel {sentinel.port} seeing the set-up")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{cluster.logs()}") from None
        yield cluster
