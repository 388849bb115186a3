"""Transitions, the origin-destination matrix's unit (protocol.md, "Routes and
journeys"), as a pure function of one vehicle's reads.

A vehicle is a plate's exact normal form (no edit distance here). A read
within REPEAT of the same vehicle's previous read at the same camera (whether
that one was a repeat or not, so a queue under a camera stays one passage)
is a repeat: it is dropped. Every other read's transition is from the
vehicle's previous read that is not a repeat: that read's camera, and the
seconds between them. The matrix counts the transitions whose gap is at most
its `max_seconds` (engine.py stores them as reads arrive; queries.py counts).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from detections.journeys.pairing import Read

REPEAT = timedelta(seconds=60)


@dataclass(frozen=True)
class Transition:
    repeat: bool
    from_camera_id: int | None = None
    gap_seconds: float | None = None


def derive(reads: Iterable[Read], *, earlier: Iterable[Read] = (), anchor: Read | None = None) -> dict[int, Transition]:
    """The transition of each of one vehicle's `reads` (by detection id).
    `earlier`: the vehicle's reads within REPEAT before the first of `reads`;
    `anchor`: its last read before them that is not a repeat."""
    last_at_camera = {}
    for read in sorted(earlier, key=lambda one: one.order):
        last_at_camera[read.camera_id] = read.at
    previous = anchor
    found = {}
    for read in sorted(reads, key=lambda one: one.order):
        before = last_at_camera.get(read.camera_id)
        last_at_camera[read.camera_id] = read.at
        if before is not None and read.at - before <= REPEAT:
            found[read.detection_id] = Transition(repeat=True)
            continue
        if previous is None:
            found[read.detection_id] = Transition(repeat=False)
        else:
            gap = (read.at - previous.at).total_seconds()
            found[read.detection_id] = Transition(repeat=False, from_camera_id=previous.camera_id, gap_seconds=gap)
        previous = read
    return found


def count_matrix(
    reads: Iterable[Read], transitions: dict[int, Transition], cameras: list[int], since, until, max_seconds: float
) -> list[list[int]]:
    """counts[i][j]: the transitions from cameras[i] to cameras[j] whose later
    read is in [since, until) and whose gap is at most `max_seconds` (the
    brute-force form of queries.od_matrix, for tests and the benchmark)."""
    index = {camera: i for i, camera in enumerate(cameras)}
    counts = [[0] * len(cameras) for _ in cameras]
    for read in reads:
        transition = transitions[read.detection_id]
        if transition.from_camera_id is None or transition.gap_seconds > max_seconds:
            continue
        if (since is not None and read.at < since) or (until is not None and read.at >= until):
            continue
        i, j = index.get(transition.from_camera_id), index.get(read.camera_id)
        if i is not None and j is not None:
            counts[i][j] += 1
    return counts
