"""Stop and start the real MariaDB and Redis on this machine, for outage tests.

The start commands are the ones the machine itself uses (see scripts/services.sh).
Waiting polls the service's own ping: a service coming up sends no event to await.
"""

import subprocess
import time


def end_process(process: subprocess.Popen, timeout: float = 10.0):
    """SIGTERM, and SIGKILL if it has not exited within `timeout` s; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
MARIADB_START = ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"]


def _succeeds(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, timeout=10).returncode == 0


def redis_up() -> bool:
    return (
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        == "PONG"
    )


def mariadb_up() -> bool:
    return _succeeds(["mysqladmin", "-uroot", "-h127.0.0.1", "--connect-timeout=2", "ping"])


def wait_until(check, expected: bool, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while check() != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not {'come up' if expected else 'go down'} within {timeout:.0f} s")
        time.sleep(0.2)


def stop_redis():
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True, timeout=10)
    wait_until(redis_up, False, "Redis")


def start_redis():
    if not redis_up():
        subprocess.run(REDIS_START, check=True, capture_output=True, timeout=30)
    wait_until(redis_up, True, "Redis")


def mariadb_process_gone() -> bool:
    return subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True, timeout=10).returncode != 0


def stop_mariadb():
    subprocess.run(["mysqladmin", "-uroot", "-h127.0.0.1", "shutdown"], capture_output=True, timeout=60)
    wait_until(mariadb_up, False, "MariaDB")
    # It stops answering before its process has exited; start_mariadb in between
    # would find it "already running", start nothing, and time out.
    wait_until(mariadb_process_gone, True, "MariaDB's process to exit")


def start_mariadb():
    if not mariadb_up():
        subprocess.run(MARIADB_START, check=True, capture_output=True, timeout=30)
    wait_until(mariadb_up, True, "MariaDB")
