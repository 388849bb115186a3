"""--profile: py-spy records one server process during a row, and a summary of what it
recorded (top functions by own and total time) is written beside the collapsed stacks
in benchmarks/results/profiles/."""

import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_processes import BENCH, VENV_BIN, say, start_process, stop_process

PROFILES = BENCH / "results" / "profiles"


class Profiler:
    """py-spy recording one process for a row of `duration` seconds."""

    def __init__(self, pid: int, name: str, duration: float, log_path: Path):
        PROFILES.mkdir(parents=True, exist_ok=True)
        self.duration = duration
        self.stem = PROFILES / f"{datetime.now(UTC):%Y-%m-%d}-{name}"
        command = [
            str(VENV_BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--format",
            "raw",
            "--gil",
            "--nonblocking",
            "-o",
            f"{self.stem}.txt",
            "--duration",
            str(int(duration) + 5),
        ]
        say(f"py-spy recording pid {pid} -> {self.stem}.txt")
        self.process = start_process(command, log_path=log_path)
        time.sleep(1)

    def stop(self):
        process = self.process
        try:
            process.wait(timeout=self.duration + 60)
        except subprocess.TimeoutExpired:
            pass
        # py-spy writes its file on SIGINT; ends its own group only.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        stop_process(process)
        raw = Path(f"{self.stem}.txt")
        if raw.exists():
            summary = summarize_profile(raw)
            Path(f"{self.stem}-summary.txt").write_text(summary)
            say(f"profile summary -> {self.stem}-summary.txt\n{summary[:3000]}")


def summarize_profile(path: Path, top=25) -> str:
    """Top functions by own and by total samples, from py-spy's raw (collapsed) output."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        # The thread name comes first in py-spy's raw format when present.
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    out = [
        f"{samples} samples (py-spy --gil: only the thread holding the GIL, i.e. where the Python CPU goes)",
        "",
        "own time:",
    ]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / samples:5.1f}%  {frame}")
    out += ["", "total time (the function and what it calls):"]
    for frame, n in sorted(total.items(), key=lambda kv: -kv[1])[: top * 2]:
        out.append(f"  {100 * n / samples:5.1f}%  {frame}")
    out += ["", "total time, the project's own functions (detections/, vehicle_monitor/):"]
    mine = [(f, n) for f, n in total.items() if "detections/" in f or "vehicle_monitor/" in f]
    for frame, n in sorted(mine, key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / samples:5.1f}%  {frame}")
    return "\n".join(out) + "\n"
