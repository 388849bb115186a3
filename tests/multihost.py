"""Several hosts on this machine, for the tests and the benchmark that need a
real network between the parts: a load balancer, two application hosts and a
data host, each a Linux network namespace on one bridge.

    clients (this namespace, .1) --> lb (.10, HAProxy :80) --> app1 (.11), app2 (.12)
                                                                   |
                            data (.20): MariaDB, Redis primary + replica + 3 Sentinels, SeaweedFS S3

Each application host runs the production server command (docker-compose.yml's
`web`) and the webhook worker, CPU-capped by a cgroup of its own, so a host is a
fixed amount of machine. Every namespace, link, cgroup and folder the harness
makes is named after PREFIX; the stale ones of an earlier run that died are
removed first, under a lock, so two runs on one machine wait for each other
instead of tearing down each other's hosts. The addresses come from the first
CANDIDATE_NETWORKS entry that no route or address of this machine overlaps, and
the namespaces have no route anywhere else: no traffic leaves those addresses.
"""

import contextlib
import csv
import fcntl
import io
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import Credentials, ServerProcess
from mariadb_processes import MariaDB, prepare
from object_store import ObjectStore
from places import Place
from processes import end_process, wait_until
from redis_processes import MASTER_NAME, PASSWORD, SENTINEL_PASSWORD, SentinelCluster, sentinel_cluster
from webhook_helpers import WorkerProcess

from vehicle_monitor.admission import OVERLOADED_RETRY_AFTER_SECONDS as RETRY_AFTER

PREFIX = "vmmh"
OVERLOADED_BODY = (
    '{"error":"overloaded","detail":"No application host could take this request in time; nothing was stored. '
    'Retry after the seconds Retry-After gives."}'
)
# One path whatever TMPDIR says, so that every run on the machine waits on the same lock.
LOCK_FILE = Path("/run" if Path("/run").is_dir() else tempfile.gettempdir()) / f"{PREFIX}.lock"
CANDIDATE_NETWORKS = ("10.213.0.0/24", "10.214.0.0/24", "172.30.213.0/24", "192.168.213.0/24")
CLIENT, LB, APP1, APP2, DATA = 1, 10, 11, 12, 20
APP_HOSTS = ("app1", "app2")
CAMERAS = ("gate-1", "gate-2", "gate-3", "gate-4", "yard")
LB_PORT = 80
# HAProxy asks each application host for /healthz this often and counts it
# down after FALL failures in a row: a dead host is out of the rotation, and
# its sockets are closed, about a second after it stops answering.
CHECK_INTERVAL_MS = 500
FALL = 2
# A check answered later than this counts as failed. A host at its CPU cap answers
# /healthz on its event loop within a few hundred ms; the check's connect still
# gives up after CHECK_INTERVAL_MS, so a host cut off is counted down as fast.
CHECK_TIMEOUT_MS = 2000
# Requests HAProxy has in progress at each host at most, below the host's own
# HTTP_MAX_IN_FLIGHT; the rest wait in HAProxy's queue up to QUEUE_TIMEOUT_MS,
# then get 503 with Retry-After (docs/operations.md, "When hosts are saturated").
MAX_PER_HOST = 32
QUEUE_TIMEOUT_MS = 2000
CGROUP_V1 = Path("/sys/fs/cgroup")


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)


def available() -> str | None:
    """Why this machine cannot run the harness, or None."""
    if os.geteuid() != 0:
        return "the multi-host harness needs root (network namespaces, cgroups)"
    for binary in ("ip", "haproxy", "mariadbd", "mariadb-install-db", "redis-server"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (scripts/bootstrap.sh --dev installs it)"
    probe = f"{PREFIX}-probe"
    made = run("ip", "netns", "add", probe, check=False)
    run("ip", "netns", "del", probe, check=False)
    if made.returncode != 0:
        return f"this machine refuses network namespaces: {made.stderr.strip()}"
    if not os.access(CpuCap.parent(), os.W_OK):
        return f"{CpuCap.parent()} is not writable: no CPU cap can be made"
    return None


# --- Addresses, namespaces, links -----------------------------------------------------------


def unused_network() -> ipaddress.IPv4Network:
    """The first candidate that no route (any table) or address here overlaps."""
    taken = []
    for entry in json.loads(run("ip", "-j", "-4", "route", "show", "table", "all").stdout):
        destination = entry.get("dst", "default")
        if destination != "default":
            taken.append(ipaddress.ip_network(destination, strict=False))
    for link in json.loads(run("ip", "-j", "-4", "addr").stdout):
        for address in link.get("addr_info", ()):
            taken.append(ipaddress.ip_network(f"{address['local']}/{address['prefixlen']}", strict=False))
    for candidate in map(ipaddress.ip_network, CANDIDATE_NETWORKS):
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise RuntimeError(f"every candidate network is in use here: {CANDIDATE_NETWORKS}")


def remove_stale():
    """Everything an earlier run of the harness left behind: processes, namespaces, links, cgroups, folders."""
    for namespace in run("ip", "netns", "list").stdout.split():
        if namespace.startswith(f"{PREFIX}-"):
            _kill_namespace(namespace)
            run("ip", "netns", "del", namespace, check=False)
    for link in json.loads(run("ip", "-j", "link").stdout):
        if link["ifname"].startswith(f"{PREFIX}-"):
            run("ip", "link", "del", link["ifname"], check=False)
    for parent in (CGROUP_V1, CGROUP_V1 / "cpu", CGROUP_V1 / "cpuacct"):
        for group in parent.glob(f"{PREFIX}-*"):
            _kill_pids(_read_pids(group / "cgroup.procs"))
            with contextlib.suppress(OSError):
                group.rmdir()
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _read_pids(path: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(line) for line in path.read_text().split()]
    return []


def _kill_pids(pids: list[int]):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _namespace_pids(namespace: str) -> list[int]:
    return [int(pid) for pid in run("ip", "netns", "pids", namespace, check=False).stdout.split()]


def _kill_namespace(namespace: str):
    _kill_pids(_namespace_pids(namespace))
    wait_until(lambda: not _namespace_pids(namespace), True, f"the processes of {namespace} to end", timeout=20)


class CpuCap:
    """A cgroup of its own with a CPU quota (cgroup v1's cpu.cfs_quota_us, or
    v2's cpu.max), and the CPU time its processes used (cpuacct, or cpu.stat)."""

    PERIOD_US = 100_000

    @staticmethod
    def unified() -> bool:
        controllers = CGROUP_V1 / "cgroup.controllers"
        return controllers.exists() and "cpu" in controllers.read_text().split()

    @classmethod
    def parent(cls) -> Path:
        return CGROUP_V1 if cls.unified() else CGROUP_V1 / "cpu"

    def __init__(self, name: str, cores: float):
        self.name = name
        self.v2 = self.unified()
        if self.v2:
            # A child gets cpu.max only once its parent hands the controller down.
            subtree = CGROUP_V1 / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
            self.groups = [CGROUP_V1 / name]
            self.groups[0].mkdir(exist_ok=True)
        else:
            # cpu and cpuacct are often one hierarchy (cpu,cpuacct): one folder then.
            groups = [CGROUP_V1 / "cpu" / name, CGROUP_V1 / "cpuacct" / name]
            for group in groups:
                group.mkdir(exist_ok=True)
            self.groups = list({group.resolve(): group for group in groups}.values())
            (self.groups[0] / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
        self.set(cores)

    def set(self, cores: float | None):
        """Cap the group at `cores` (None: no cap, as much CPU as the machine gives)."""
        if self.v2:
            quota = "max" if cores is None else str(int(cores * self.PERIOD_US))
            (self.groups[0] / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
        else:
            quota = -1 if cores is None else int(cores * self.PERIOD_US)
            (self.groups[0] / "cpu.cfs_quota_us").write_text(str(quota))

    def join_script(self) -> str:
        """Shell that moves itself into the group and then runs its arguments."""
        moves = " && ".join(f"echo $$ > {group / 'cgroup.procs'}" for group in self.groups)
        return f'{moves} && exec "$@"'

    def cpu_seconds(self) -> float:
        if self.v2:
            stat = dict(line.split() for line in (self.groups[0] / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        return int((self.groups[-1] / "cpuacct.usage").read_text()) / 1e9

    def remove(self):
        for group in self.groups:
            _kill_pids(_read_pids(group / "cgroup.procs"))
            wait_until(lambda g=group: not _read_pids(g / "cgroup.procs"), True, f"{group} to empty", timeout=20)
            with contextlib.suppress(FileNotFoundError):
                group.rmdir()


@dataclass
class Host:
    """A network namespace on the bridge, with one address."""

    name: str
    address: str
    cap: CpuCap | None = None

    @property
    def namespace(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def link(self) -> str:
        """The bridge's end of the host's cable."""
        return f"{PREFIX}-{self.name}"

    @property
    def place(self) -> Place:
        launcher = ("ip", "netns", "exec", self.namespace)
        if self.cap is not None:
            # Into the cgroup first: `ip netns exec` mounts a /sys of the
            # namespace's own, without the cgroup folders.
            launcher = ("sh", "-c", self.cap.join_script(), "sh", *launcher)
        return Place(host=self.address, launcher=launcher)

    def create(self, bridge: str, prefix_length: int):
        run("ip", "netns", "add", self.namespace)
        inside = f"{PREFIX}-{self.name}-in"
        run("ip", "link", "add", self.link, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", self.link, "master", bridge, "up")
        run("ip", "link", "set", inside, "netns", self.namespace)
        in_namespace = ("ip", "netns", "exec", self.namespace)
        run(*in_namespace, "ip", "link", "set", inside, "name", "eth0")
        run(*in_namespace, "ip", "addr", "add", f"{self.address}/{prefix_length}", "dev", "eth0")
        run(*in_namespace, "ip", "link", "set", "eth0", "up")
        run(*in_namespace, "ip", "link", "set", "lo", "up")

    def pids(self) -> list[int]:
        return _namespace_pids(self.namespace)

    def kill_everything(self):
        """SIGKILL every process on the host, as a power cut would."""
        _kill_namespace(self.namespace)

    def cut(self):
        """Pull the host's cable: its processes live on, unreachable."""
        run("ip", "link", "set", self.link, "down")

    def mend(self):
        run("ip", "link", "set", self.link, "up")

    def remove(self):
        try:
            _kill_namespace(self.namespace)
        finally:
            run("ip", "netns", "del", self.namespace, check=False)
            run("ip", "link", "del", self.link, check=False)


# --- The load balancer ------------------------------------------------------------------------


class LoadBalancer:
    """HAProxy proxying HTTP and WebSocket to the application hosts, with a
    health check, and an admin socket to read and change their state."""

    def __init__(self, directory: Path, place: Place, backends: dict[str, str]):
        self.directory = directory
        self.place = place
        self.backends = backends  # name -> address:port
        self.admin_socket = directory / "haproxy.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.place.host}:{LB_PORT}"

    def config(self) -> str:
        servers = "\n".join(f"    server {name} {address} check" for name, address in self.backends.items())
        tracking = "\n".join(
            f"    server {name} {address} track application/{name}" for name, address in self.backends.items()
        )
        return f"""global
    maxconn 5000
    stats socket {self.admin_socket} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # How long a request may wait in the queue for a host with room.
    timeout queue {QUEUE_TIMEOUT_MS}ms
    # A WebSocket, once upgraded, may stay quiet between events for as long as it likes.
    timeout tunnel 1h
    timeout client-fin 2s
    # A connection refused is retried on the other host: nothing was sent.
    retry-on conn-failure
    retries 2
    option redispatch 1
    # HAProxy's own 503 (the queue timed out, or no host is up): JSON, as the
    # application's errors are, and when to try again.
    http-error status 503 content-type application/json string '{OVERLOADED_BODY}' hdr Retry-After {RETRY_AFTER}

frontend web
    bind {self.place.host}:{LB_PORT}
    # Sockets apart: an open socket would hold one of a host's MAX_PER_HOST places for hours.
    use_backend sockets if {{ path_beg /ws }}
    default_backend application

backend application
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host {self.place.host}
    http-check expect status 200
    timeout check {CHECK_TIMEOUT_MS}ms
    # A host counted down is out of the rotation, and the sockets it held are
    # closed, so that their clients reconnect to a host that is up.
    default-server inter {CHECK_INTERVAL_MS}ms fall {FALL} rise 2 on-marked-down shutdown-sessions maxconn {MAX_PER_HOST}
    http-response set-header X-Served-By %[srv_name]
{servers}

backend sockets
    balance roundrobin
    # Up, down and in maintenance as the application backend's checks say.
    default-server on-marked-down shutdown-sessions
    http-response set-header X-Served-By %[srv_name]
{tracking}
"""

    def start(self):
        path = self.directory / "haproxy.cfg"
        path.write_text(self.config())
        run("haproxy", "-c", "-q", "-f", str(path))
        log = (self.directory / "haproxy.out").open("ab")
        self.process = subprocess.Popen(
            [*self.place.launcher, "haproxy", "-db", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_until(self._listening, True, "HAProxy's admin socket", timeout=20)

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("haproxy exited:\n" + (self.directory / "haproxy.out").read_text()[-3000:])
        return self.admin_socket.exists()

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self.admin_socket))
            admin.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := admin.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each application host as HAProxy sees it: UP, DOWN, MAINT, ..."""
        stats = self.application_stats()
        return {name: stats[name]["status"] for name in self.backends if name in stats}

    def application_stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's counters of the application backend: a row per host, and BACKEND's."""
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == "application"}

    def check_downs(self) -> dict[str, int]:
        """How many times so far HAProxy's checks counted each application host down."""
        stats = self.application_stats()
        return {name: int(stats[name]["chkdown"] or 0) for name in self.backends}

    def in_progress(self) -> dict[str, int]:
        """Requests each host has in progress now, and how many wait in the queue ("queued")."""
        stats = self.application_stats()
        counts = {name: int(stats[name]["scur"] or 0) for name in self.backends}
        counts["queued"] = int(stats["BACKEND"]["qcur"] or 0)
        return counts

    def wait_for(self, expected: dict[str, str], timeout: float = 30.0):
        wait_until(
            lambda: {name: state.split()[0] for name, state in self.states().items() if name in expected} == expected,
            True,
            f"HAProxy to see {expected}",
            timeout=timeout,
        )

    def drain(self, name: str):
        """Take a host out of the rotation (maintenance): new requests go to the others."""
        self.command(f"disable server application/{name}")

    def admit(self, name: str):
        self.command(f"enable server application/{name}")

    def stop(self):
        if self.process is not None:
            end_process(self.process)


# --- The whole deployment ---------------------------------------------------------------------


@dataclass
class Deployment:
    """The running hosts, and what the tests do to them."""

    directory: Path
    hosts: dict[str, Host]
    database: MariaDB
    redis: SentinelCluster
    store: ObjectStore
    bucket: str
    balancer: LoadBalancer
    credentials: Credentials
    environment: dict[str, str]
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.balancer.url

    @property
    def ws_url(self) -> str:
        return self.balancer.url.replace("http://", "ws://")

    def start_application(self, name: str):
        """The production server command and the webhook worker on host `name`."""
        place = self.hosts[name].place
        media = self.directory / f"media-{name}"  # unless media live in the bucket
        media.mkdir(exist_ok=True)
        self.servers[name] = ServerProcess(media, self.credentials, self.environment, place=place, port=8000)
        self.workers[name] = WorkerProcess(env=self.environment, launcher=place.launcher)

    def kill_application(self, name: str):
        """Every process of host `name`, SIGKILL; reaped."""
        self.hosts[name].kill_everything()
        for process in (self.servers.pop(name).process, self.workers.pop(name).process):
            process.wait(timeout=10)

    def stop_application(self, name: str):
        if name in self.workers:
            self.workers.pop(name).kill()
        if name in self.servers:
            self.servers.pop(name).stop()

    def event_seqs(self) -> list[int]:
        return [seq for (seq,) in self.database.query("SELECT seq FROM detections_event ORDER BY seq")]

    def logs(self) -> str:
        parts = [f"--- {name} server ---\n" + "".join(server.output[-200:]) for name, server in self.servers.items()]
        parts += [f"--- {name} worker ---\n" + worker.text()[-4000:] for name, worker in self.workers.items()]
        parts.append("--- MariaDB ---\n" + self.database.log())
        return "\n".join(parts)


@contextlib.contextmanager
def deployment(cores_per_application_host: float = 0.5, *, shared_media: bool = True) -> Iterator[Deployment]:
    """Build the hosts, start every service, yield; remove all of it afterwards, however it ends.

    shared_media: snapshots in the data host's bucket (MEDIA_STORAGE=s3), or,
    with False, in a folder of each application host's own (the default storage).
    """
    LOCK_FILE.touch()
    with LOCK_FILE.open() as lock, contextlib.ExitStack() as cleanup:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_stale()
        directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
        cleanup.callback(shutil.rmtree, directory, True)

        network = unused_network()

        def address(host_number: int) -> str:
            return str(network.network_address + host_number)

        bridge = f"{PREFIX}-br"
        # Not through iptables: a machine whose FORWARD policy drops (Docker's) must
        # still carry the hosts' traffic.
        run("ip", "link", "add", bridge, "type", "bridge", "nf_call_iptables", "0")
        cleanup.callback(run, "ip", "link", "del", bridge, check=False)
        run("ip", "addr", "add", f"{address(CLIENT)}/{network.prefixlen}", "dev", bridge)
        run("ip", "link", "set", bridge, "up")

        hosts = {"lb": Host("lb", address(LB)), "data": Host("data", address(DATA))}
        for name, number in zip(APP_HOSTS, (APP1, APP2), strict=True):
            cap = CpuCap(f"{PREFIX}-{name}", cores_per_application_host)
            cleanup.callback(cap.remove)
            hosts[name] = Host(name, address(number), cap)
        for host in hosts.values():
            cleanup.callback(host.remove)
            host.create(bridge, network.prefixlen)

        data = hosts["data"].place
        database = MariaDB(directory / "mariadb", data, port=3306)
        cleanup.callback(database.stop)
        database.start()
        redis = cleanup.enter_context(sentinel_cluster(data))
        (directory / "s3").mkdir()
        store = ObjectStore(directory / "s3", data)
        cleanup.callback(store.stop)
        store.start()
        bucket = store.new_bucket()

        environment = {
            "DATABASE_URL": database.url,
            "REDIS_URL": "",
            "REDIS_SENTINELS": redis.sentinels_setting,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "REDIS_PASSWORD": PASSWORD,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "CHANNEL_LAYER_PREFIX": PREFIX,
            "DJANGO_ALLOWED_HOSTS": ",".join(host.address for host in hosts.values()),
            "PUBLIC_BASE_URL": f"http://{address(LB)}",
            **(store.environment(bucket) if shared_media else {}),
        }
        credentials = prepare(environment, CAMERAS)

        balancer = LoadBalancer(
            directory / "lb", hosts["lb"].place, {name: f"{hosts[name].address}:8000" for name in APP_HOSTS}
        )
        balancer.directory.mkdir()
        cleanup.callback(balancer.stop)
        running = Deployment(directory, hosts, database, redis, store, bucket, balancer, credentials, environment)
        for name in APP_HOSTS:
            cleanup.callback(running.stop_application, name)
            running.start_application(name)
        balancer.start()
        balancer.wait_for({name: "UP" for name in APP_HOSTS})
        try:
            yield running
        except BaseException:
            print(running.logs())
            raise
