"""Watch-list entries as every path writes them (the API, the CSV import, the
admin): what a plate, a note and an expiry time may be, and the one place an
entry's normal form is set from its plate (`new_entry`, `with_normal_form`).
"""

from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from detections.alerts.plates import normalize
from detections.core.formats import EARLIEST, LATEST
from detections.models import Watchlist, WatchlistEntry

PLATE_MAX_LENGTH = WatchlistEntry._meta.get_field("plate").max_length
NOTE_MAX_LENGTH = WatchlistEntry._meta.get_field("note").max_length
# Rows per bulk INSERT, UPDATE and DELETE statement.
BATCH_SIZE = 2000


class PlateAlreadyListed(Exception):
    def __init__(self, existing: WatchlistEntry):
        self.existing = existing
        super().__init__(
            f"{existing.plate_normalized} is already on this list (entry {existing.pk}, typed '{existing.plate}')."
        )


def checked_plate(plate: str) -> str:
    """The plate as staff typed it, without surrounding space; ValueError says what is wrong."""
    plate = plate.strip()
    if not plate:
        raise ValueError("the plate is empty.")
    if len(plate) > PLATE_MAX_LENGTH:
        raise ValueError(f"'{plate[:40]}...' is longer than {PLATE_MAX_LENGTH} characters.")
    if not plate.isprintable():
        raise ValueError("the plate must not contain control characters.")
    if not normalize(plate):
        raise ValueError(f"'{plate}' has no letters or digits.")
    return plate


def checked_note(note: str) -> str:
    note = note.strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise ValueError(f"the note is longer than {NOTE_MAX_LENGTH} characters.")
    if not note.isprintable():
        raise ValueError("the note must not contain control characters.")
    return note


def parse_expiry(text: str) -> datetime | None:
    """'' -> None (never expires); an ISO 8601 date-time, UTC when it has no
    offset, or a date, which means its midnight UTC. ValueError says what is wrong."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError(f"'{text[:40]}' is not an ISO 8601 time such as 2026-12-31T23:59:00Z or 2026-12-31.")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(f"'{text}' is out of range (the years 1001 to 9998).")
    return moment


def with_normal_form(entry: WatchlistEntry) -> WatchlistEntry:
    """The entry with plate_normalized set from its plate: whoever writes an entry calls this."""
    entry.plate_normalized = normalize(entry.plate)
    return entry


def new_entry(watchlist: Watchlist, plate: str, note: str = "", expires_at: datetime | None = None) -> WatchlistEntry:
    """An unsaved entry (for bulk_create too)."""
    return with_normal_form(WatchlistEntry(watchlist=watchlist, plate=plate, note=note, expires_at=expires_at))


def lock_entries_of(watchlist: Watchlist) -> None:
    """Hold the list's row until the transaction ends: writes to its entries
    (one plate, an import) then take turns, so none trips over another's new plate."""
    Watchlist.objects.select_for_update().filter(pk=watchlist.pk).values_list("pk").first()


def add_entry(watchlist: Watchlist, plate: str, note: str = "", expires_at: datetime | None = None) -> WatchlistEntry:
    """Put one plate on the list (its post_save signal tells every process);
    PlateAlreadyListed when the same normalised plate is there already."""
    entry = new_entry(watchlist, plate, note, expires_at)
    with transaction.atomic():
        lock_entries_of(watchlist)
        existing = WatchlistEntry.objects.filter(watchlist=watchlist, plate_normalized=entry.plate_normalized).first()
        if existing is not None:
            raise PlateAlreadyListed(existing)
        entry.save()
    return entry


def same_plate_elsewhere(entry: WatchlistEntry) -> WatchlistEntry | None:
    """Another entry of the entry's list with its normal form (the admin's form checks before saving)."""
    with_normal_form(entry)
    return (
        WatchlistEntry.objects.filter(watchlist_id=entry.watchlist_id, plate_normalized=entry.plate_normalized)
        .exclude(pk=entry.pk)
        .first()
    )


def delete_entries(ids: list[int]) -> None:
    """Delete entries by id, a batch a statement. The caller bumps the revision
    (`config.changed()`): bulk statements send no signals."""
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        _delete_rows(f"id IN ({', '.join(['%s'] * len(chunk))})", chunk)


def delete_watchlist(watchlist: Watchlist) -> None:
    """Delete a list with its entries; ProtectedError, and nothing deleted, when a rule uses it."""
    with transaction.atomic():
        _delete_rows("watchlist_id = %s", [watchlist.pk])
        watchlist.delete()  # its post_delete signal bumps the revision


def _delete_rows(condition: str, params) -> None:
    # Not QuerySet.delete(): with post_delete receivers connected (alerts.config),
    # Django would load every entry and send a signal, and bump the revision, per row.
    table = connection.ops.quote_name(WatchlistEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {condition}", params)
