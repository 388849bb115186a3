"""The processes of a run: the children it starts (the server under test among them),
and MariaDB's and Redis's, whose CPU it samples but never touches.

Every child runs in a process group of its own and is ended by that group's id;
nothing is ever matched by name, so others' servers on the machine are safe.
"""

import atexit
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
APP = "vehicle_monitor.asgi:application"
OPEN_FILES = 20000


def say(text):
    """One line of the run's progress, timestamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def tail(path: Path, lines=30) -> str:
    try:
        return "".join(Path(path).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


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


def stop_all_on_exit():
    """SIGTERM and SIGHUP stop the run as Ctrl-C does, and every child we started is ended at exit."""
    # Ctrl-C stops the run even when started from a shell that ignores SIGINT in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(stop_all)


# --- The server under test ----------------------------------------------------------------------


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
        return [each for process in self.processes for each in process_tree(process.pid)]

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

    def db_connections(self) -> int:
        """TCP connections from the server's processes to MariaDB (evidence for leaks)."""
        count = 0
        for process in self.all_processes():
            try:
                count += sum(1 for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == 3306)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return count

    def stop(self):
        for process in self.processes:
            stop_process(process, timeout=20)


# --- MariaDB's and Redis's processes, and CPU accounting ----------------------------------------


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (none once it has exited)."""
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def find_service_process(name: str) -> psutil.Process | None:
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == name:
            return process
    return None


def service_pids() -> list[int]:
    """MariaDB's and Redis's pids: a change during a row means one of them was restarted."""
    pids = []
    for names in (("mariadbd", "mysqld"), ("redis-server",)):
        for name in names:
            process = find_service_process(name)
            if process:
                pids.append(process.pid)
                break
    return pids


def service_processes(*names) -> list[psutil.Process]:
    """The first running process of these names, as a CpuMeter group."""
    found = next((p for n in names if (p := find_service_process(n))), None)
    return [found] if found else []


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


def wait_for_quiet(cpu: CpuMeter, seconds: float):
    """Up to `seconds` (0: not at all) for the machine to be busy with nothing else."""
    if not seconds:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = cpu.snapshot()
        time.sleep(1)
        other = CpuMeter.percent(before, cpu.snapshot())["other"]
        if other < 25:
            return
        say(f"machine busy with other processes ({other:.0f}% of a core); waiting")
    say("machine still busy; running the row anyway (see 'other' CPU in its notes)")
