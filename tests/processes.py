"""Ending and awaiting the processes a test starts of its own.

Waiting polls: a process coming up or going away sends no event to await.
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


def wait_until(check, expected: bool, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while check() != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not {'come up' if expected else 'go down'} within {timeout:.0f} s")
        time.sleep(0.2)
