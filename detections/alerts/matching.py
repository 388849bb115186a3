"""Finding a read plate on a watch-list, by index, in microseconds.

An exact list is a dict. A fuzzy list with `max_edits` k also finds entries
within k edits (Levenshtein distance) without comparing the plate with every
entry: each entry is cut into k+1 segments and indexed by them. k edits can
touch at most k segments, so an entry within k edits of the plate keeps one
segment intact, found in the plate shifted by at most k places. A plate thus
looks up (2k+1) lengths x (k+1) segments x (2k+1) shifts keys, and only the
few entries found there are measured with rapidfuzz.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from rapidfuzz.distance import Levenshtein


@dataclass(frozen=True)
class Entry:
    id: int
    plate: str  # as staff typed it
    normalized: str
    expires_at: datetime | None

    def live_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at


@dataclass(frozen=True)
class PlateMatch:
    entry: Entry
    distance: int


@lru_cache(maxsize=256)
def _segments(length: int, parts: int) -> tuple[tuple[int, int], ...]:
    """(start, end) of `parts` near-equal segments of a string of `length`."""
    bounds = [round(i * length / parts) for i in range(parts + 1)]
    return tuple(zip(bounds, bounds[1:], strict=False))


class PlateIndex:
    """The live entries of one watch-list, searchable by normalised plate."""

    def __init__(self, entries: list[Entry], max_edits: int):
        self.max_edits = max_edits
        self.exact: dict[str, Entry] = {entry.normalized: entry for entry in entries}
        self.by_segment: dict[tuple[int, int, str], list[Entry]] = defaultdict(list)
        self.short: list[Entry] = []  # no longer than max_edits: within reach of any plate
        if max_edits:
            for entry in entries:
                length = len(entry.normalized)
                if length <= max_edits:
                    self.short.append(entry)
                    continue
                for number, (start, end) in enumerate(_segments(length, max_edits + 1)):
                    self.by_segment[length, number, entry.normalized[start:end]].append(entry)

    def __len__(self):
        return len(self.exact)

    def best_match(self, plate: str, moment: datetime) -> PlateMatch | None:
        """The closest live entry within max_edits of the normalised `plate`, if any."""
        if not plate:
            return None
        entry = self.exact.get(plate)
        if entry is not None and entry.live_at(moment):
            return PlateMatch(entry, 0)
        if not self.max_edits:
            return None
        best = None
        for candidate in self._candidates(plate):
            distance = Levenshtein.distance(plate, candidate.normalized, score_cutoff=self.max_edits)
            if distance <= self.max_edits and candidate.live_at(moment):
                if best is None or (distance, candidate.id) < (best.distance, best.entry.id):
                    best = PlateMatch(candidate, distance)
        return best

    def _candidates(self, plate: str) -> set[Entry]:
        edits, size = self.max_edits, len(plate)
        found = set(self.short)
        for length in range(max(edits + 1, size - edits), size + edits + 1):
            for number, (start, end) in enumerate(_segments(length, edits + 1)):
                width = end - start
                for position in range(max(0, start - edits), min(size - width, start + edits) + 1):
                    found.update(self.by_segment.get((length, number, plate[position : position + width]), ()))
        return found
