"""The plates read at the sites' cameras, in the engine's memory: where it
looks for a vehicle's look-alikes (the spellings one edit away) without asking
MariaDB for an IN of a few hundred of them per read and site.

The book is made from the detections once, then kept up to date from the
log's new-detection and correction events as the engine's steps take them.
It may hold more than is true (a deleted read's plate stays; a step rolled
back leaves its plates), never less: what it finds is checked against the
detections (`engine.Neighbours`), in one query for a step, and only when it
finds something, which a plate rarely has.
"""

from collections import defaultdict

from detections.alerts.plates import normalize
from detections.models import Detection, Event, EventKind, feed_head

# Past this many events behind (another engine took the steps meanwhile), the
# book is made again rather than brought up to date from them.
CATCH_UP_LIMIT = 20_000
READ_KINDS = (EventKind.NEW_DETECTION, EventKind.DETECTION_UPDATED)


class PlateBook:
    def __init__(self):
        self.plates: dict[str, set[str]] = defaultdict(set)  # camera name -> normalised plates
        self.cameras: frozenset[str] = frozenset()  # those it was made for
        self.upto: int | None = None  # every read at them logged up to this seq is in
        # An event the book has seen, and when it was made: the same log still?
        self.mark: tuple[int, object] = (0, None)

    def bring_to(self, seq: int, cameras: frozenset[str]):
        """Hold every plate read at `cameras` whose event is at or before `seq`."""
        if self.upto is None or not cameras <= self.cameras or not self._same_log():
            self._make(cameras)
        if self.upto >= seq:
            return
        if seq - self.upto > CATCH_UP_LIMIT or not self._kept_after(self.upto):
            self._make(cameras)
            if self.upto >= seq:
                return
        self.note(Event.objects.filter(seq__gt=self.upto, seq__lte=seq, kind__in=READ_KINDS), upto=seq)

    def note(self, logged, *, upto: int):
        """Add the plates of these events (those after `upto` at the latest,
        up to `upto`): every read logged up to `upto` is in."""
        for event in logged:
            if event.kind in READ_KINDS and event.camera in self.cameras:
                plate = normalize(event.payload.get("plate") or "")
                if plate:
                    self.plates[event.camera].add(plate)
            if event.seq > self.mark[0]:
                self.mark = (event.seq, event.created_at)
        self.upto = max(self.upto, upto)

    def near(self, cameras, spellings: set[str]) -> set[str]:
        """Those of `spellings` read at one of `cameras` (as far as the book knows)."""
        found = set()
        for camera in cameras:
            found |= spellings & self.plates.get(camera, set())
        return found

    def _make(self, cameras: frozenset[str]):
        # The head first: every read logged up to it is committed, so the scan has it.
        head = feed_head()
        self.plates.clear()
        self.cameras = frozenset(cameras)
        rows = (
            Detection.objects.filter(camera__name__in=self.cameras)
            .exclude(plate_normalized="")
            .values_list("camera__name", "plate_normalized")
            .order_by()
            .distinct()
        )
        for camera, plate in rows.iterator(chunk_size=10_000):
            self.plates[camera].add(plate)
        self.upto, self.mark = head, (head, self._created_at(head))

    def _same_log(self) -> bool:
        # A log made afresh (a test's flushed database) reuses its seqs.
        seq, created_at = self.mark
        return self._created_at(seq) == created_at

    @staticmethod
    def _created_at(seq: int):
        return Event.objects.filter(seq=seq).values_list("created_at", flat=True).first()

    @staticmethod
    def _kept_after(seq: int) -> bool:
        # Retention may have pruned the events after `seq`: they cannot say what came then.
        first = Event.objects.filter(seq__gt=seq).order_by("seq").values_list("seq", flat=True).first()
        return first is None or first == seq + 1
