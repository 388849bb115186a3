"""Loading a watch-list from CSV, thousands of plates at a time:

    plate,note,expires_at
    34 ABC 123,reported stolen,2026-12-31T23:59:00Z
    06 XYZ 77,,

`parse` reads the whole file and sets bad lines aside with their line number
(the header is line 1); `plan` compares what is left with the list as stored;
`apply` writes the difference in a few bulk statements. The admin's preview is
`parse` and `plan` without `apply`.

Every entry is one line, and each line is read on its own: no field may hold a
line break (plates and notes are one line), so a quote left open is an error
of its line and cannot swallow the lines after it.

Merge adds the plates the list lacks and updates the note and expiry of those
it has (the same normalised plate), leaving bad lines out. Replace also
removes the entries the file does not name, so it is all or nothing: with any
bad line it changes nothing (`ReplaceRefused`), since a line it could not read
might hold a stolen car that would otherwise come off the list.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import IntegrityError, connection, transaction

from detections.alerts import config, entries
from detections.alerts.plates import normalize
from detections.models import Watchlist, WatchlistEntry

COLUMNS = ("plate", "note", "expires_at")


class Mode(StrEnum):
    MERGE = "merge"
    REPLACE = "replace"


class InvalidCsv(ValueError):
    """The file as a whole cannot be read (no header): nothing is imported."""


class ReplaceRefused(Exception):
    """A replace whose file has bad lines: nothing is imported."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        lines = "line is" if len(errors) == 1 else "lines are"
        super().__init__(
            f"{len(errors)} {lines} bad, and a replace changes nothing unless every line is good; "
            "fix them, or merge to import the good lines."
        )


class ImportConflict(Exception):
    """Two plates the code tells apart are one to the database (its collation
    ignores accents): nothing is imported."""


@dataclass(frozen=True)
class Row:
    line: int
    plate: str
    normalized: str
    note: str
    expires_at: datetime | None


@dataclass
class ParsedCsv:
    rows: dict[str, Row] = field(default_factory=dict)  # by normalised plate
    errors: list[dict] = field(default_factory=list)  # {"line": N, "detail": "..."}

    def reject(self, line: int, detail: str):
        self.errors.append({"line": line, "detail": detail})

    def refused_in(self, mode: Mode) -> bool:
        """A replace with bad lines changes nothing."""
        return mode == Mode.REPLACE and bool(self.errors)


@dataclass
class ImportPlan:
    watchlist: Watchlist
    to_add: list[Row]
    to_update: list[Row]  # listed plates whose note or expiry the file changes
    to_remove: list[int]  # entry ids
    errors: list[dict]

    def summary(self) -> dict:
        return {
            "added": len(self.to_add),
            "updated": len(self.to_update),
            "removed": len(self.to_remove),
            "errors": self.errors,
        }


def parse(text: str) -> ParsedCsv:
    lines = iter(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    columns = _header(next(lines, ""))
    parsed = ParsedCsv()
    for line, raw in enumerate(lines, start=2):
        try:
            record = _record(raw)
        except ValueError as problem:
            parsed.reject(line, f"not CSV: {problem}")
            continue
        if any(value.strip() for value in record):
            _read_record(parsed, line, columns, record)
    return parsed


def _record(line: str) -> list[str]:
    """One line's fields; ValueError when its quotes are not as CSV has them.
    An odd number of quotes means one is left open or stands inside a field
    that does not start with one; strict csv finds the rest (text after a
    closing quote)."""
    if line.count('"') % 2:
        raise ValueError(
            'a quote on this line is not closed (every entry is one line; quote a whole field, "like, this", '
            'and double a quote inside one: "a ""b"" c").'
        )
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error as problem:
        raise ValueError(f"{problem}.") from None


def _header(line: str) -> list[str]:
    expected = ",".join(COLUMNS)
    try:
        first = _record(line)
    except ValueError as problem:
        raise InvalidCsv(f"The first line must be the header {expected}: {problem}") from None
    columns = [name.strip().lower() for name in first]
    if "plate" not in columns or not set(columns) <= set(COLUMNS) or len(set(columns)) != len(columns):
        raise InvalidCsv(f"The first line must be the header {expected}; it is '{','.join(first)[:100]}'.")
    return columns


def _read_record(parsed: ParsedCsv, line: int, columns: list[str], record: list[str]):
    if len(record) > len(columns):
        parsed.reject(line, f"{len(record)} fields; the header has {len(columns)}.")
        return
    values = dict(zip(columns, record, strict=False))
    raw_plate = values.get("plate", "")
    try:
        plate = entries.checked_plate(raw_plate)
    except ValueError as problem:
        parsed.reject(line, f"plate: {problem}")
        return
    try:
        note = entries.checked_note(values.get("note", ""))
    except ValueError as problem:
        parsed.reject(line, f"note: {problem}")
        return
    try:
        expires_at = entries.parse_expiry(values.get("expires_at", ""))
    except ValueError as problem:
        parsed.reject(line, f"expires_at: {problem}")
        return
    normalized = normalize(plate)
    earlier = parsed.rows.get(normalized)
    if earlier is not None:
        parsed.reject(line, f"plate: '{plate}' is the same plate as '{earlier.plate}' on line {earlier.line}.")
        return
    parsed.rows[normalized] = Row(line, plate, normalized, note, expires_at)


def plan(watchlist: Watchlist, parsed: ParsedCsv, mode: Mode) -> ImportPlan:
    stored = {
        normalized: (pk, note, expires_at)
        for pk, normalized, note, expires_at in WatchlistEntry.objects.filter(watchlist=watchlist).values_list(
            "pk", "plate_normalized", "note", "expires_at"
        )
    }
    to_add, to_update = [], []
    for normalized, row in parsed.rows.items():
        if normalized not in stored:
            to_add.append(row)
            continue
        _, note, expires_at = stored[normalized]
        if (note, expires_at) != (row.note, row.expires_at):
            to_update.append(row)
    to_remove = []
    if mode == Mode.REPLACE:
        to_remove = [pk for normalized, (pk, _, _) in stored.items() if normalized not in parsed.rows]
    return ImportPlan(watchlist, to_add, to_update, to_remove, parsed.errors)


def apply(plan: ImportPlan) -> None:
    """Write the plan (inside the caller's transaction, the list locked). New
    and changed entries go in the same INSERT ... ON DUPLICATE KEY UPDATE
    statements (of note and expiry only: a listed plate keeps its spelling),
    which cost a fraction of Django's UPDATE ... CASE per row. Bulk statements
    send no model signals, so the revision is bumped here, once."""
    changed_rows = plan.to_add + plan.to_update
    # MySQL upserts on any unique key and refuses to be told which; SQLite and PostgreSQL need it named.
    unique_fields = (
        ["watchlist", "plate_normalized"] if connection.features.supports_update_conflicts_with_target else None
    )
    WatchlistEntry.objects.bulk_create(
        [entries.new_entry(plan.watchlist, row.plate, row.note, row.expires_at) for row in changed_rows],
        batch_size=entries.BATCH_SIZE,
        update_conflicts=True,
        unique_fields=unique_fields,
        update_fields=["note", "expires_at"],
    )
    entries.delete_entries(plan.to_remove)
    config.changed()


def import_csv(watchlist: Watchlist, text: str, mode: Mode) -> dict:
    """Parse, plan and apply in one transaction: {"added", "updated", "removed",
    "errors"}; ReplaceRefused, and nothing written, for a replace with bad lines."""
    parsed = parse(text)
    if parsed.refused_in(mode):
        raise ReplaceRefused(parsed.errors)
    try:
        with transaction.atomic():
            entries.lock_entries_of(watchlist)
            outcome = plan(watchlist, parsed, mode)
            apply(outcome)
    except IntegrityError as problem:
        raise ImportConflict(
            f"Two plates are one to the database (they differ in accents only): {problem}."
        ) from problem
    return outcome.summary()


def preview(watchlist: Watchlist, text: str, mode: Mode) -> dict:
    """What `import_csv` would do now, without doing it; `refused` when it would
    change nothing (a replace with bad lines)."""
    parsed = parse(text)
    return {**plan(watchlist, parsed, mode).summary(), "refused": parsed.refused_in(mode)}
