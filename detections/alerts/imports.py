"""Loading a watch-list from CSV, thousands of plates at a time:

    plate,note,expires_at
    34 ABC 123,reported stolen,2026-12-31T23:59:00Z
    06 XYZ 77,,

`parse` reads the whole file and sets bad lines aside with their line number
(the header is line 1); `plan` compares what is left with the list as stored;
`apply` writes the difference in a few bulk statements. The admin's preview is
`parse` and `plan` without `apply`.

Merge adds the plates the list lacks and updates the note and expiry of those
it has (the same normalised plate); replace also removes the entries the file
does not name. A bad line whose plate could still be read keeps its entry: a
typo in a date must not take a stolen car off the list.
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
    # Normalised plates of bad lines: replace leaves their entries alone.
    plates_of_bad_lines: set[str] = field(default_factory=set)

    def reject(self, line: int, detail: str, plate: str = ""):
        self.errors.append({"line": line, "detail": detail})
        if plate.strip():
            self.plates_of_bad_lines.add(normalize(plate))


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
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    columns = _header(reader)
    parsed = ParsedCsv()
    last_line = 1
    while True:
        # A record's first line: csv counts the lines a quoted field spans too.
        line = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            return parsed
        except csv.Error as problem:
            parsed.reject(line, f"not CSV: {problem}.")
            record = None
        last_line = reader.line_num
        if record is not None and any(value.strip() for value in record):
            _read_record(parsed, line, columns, record)


def _header(reader) -> list[str]:
    expected = ",".join(COLUMNS)
    try:
        first = next(reader, [])
    except csv.Error as problem:
        raise InvalidCsv(f"The first line must be the header {expected}: {problem}.") from None
    columns = [name.strip().lower() for name in first]
    if "plate" not in columns or not set(columns) <= set(COLUMNS) or len(set(columns)) != len(columns):
        raise InvalidCsv(f"The first line must be the header {expected}; it is '{','.join(first)[:100]}'.")
    return columns


def _read_record(parsed: ParsedCsv, line: int, columns: list[str], record: list[str]):
    if len(record) > len(columns):
        parsed.reject(line, f"{len(record)} fields; the header has {len(columns)}.", record[columns.index("plate")])
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
        parsed.reject(line, f"note: {problem}", plate)
        return
    try:
        expires_at = entries.parse_expiry(values.get("expires_at", ""))
    except ValueError as problem:
        parsed.reject(line, f"expires_at: {problem}", plate)
        return
    normalized = normalize(plate)
    earlier = parsed.rows.get(normalized)
    if earlier is not None:
        parsed.reject(line, f"plate: '{plate}' is the same plate as '{earlier.plate}' on line {earlier.line}.", plate)
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
        kept = parsed.rows.keys() | parsed.plates_of_bad_lines
        to_remove = [pk for normalized, (pk, _, _) in stored.items() if normalized not in kept]
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
    """Parse, plan and apply in one transaction: {"added", "updated", "removed", "errors"}."""
    parsed = parse(text)
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
    """What `import_csv` would do now, without doing it."""
    return plan(watchlist, parse(text), mode).summary()
