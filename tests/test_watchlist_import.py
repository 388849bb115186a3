"""POST /api/watchlists/{id}/plates/import/: thousands of plates from CSV in
one request, merged into the list or replacing it; bad lines reported by line
number and, in a merge, the rest imported, while a replace with a bad line
changes nothing (protocol.md, "Watch-lists and alerts")."""

import time
from datetime import UTC, datetime

import pytest
from conftest import api_client
from django.db import connection
from django.test.utils import CaptureQueriesContext

from detections.alerts import config
from detections.models import Watchlist, WatchlistEntry

pytestmark = pytest.mark.django_db


def post_csv(client, watchlist, text: str, mode: str | None = None, content_type="text/csv"):
    query = f"?mode={mode}" if mode else ""
    return client.post(f"/api/watchlists/{watchlist.pk}/plates/import/{query}", text, content_type=content_type)


def imported(client, watchlist, text: str, mode: str | None = None) -> dict:
    response = post_csv(client, watchlist, text, mode)
    assert response.status_code == 200, response.content
    return response.json()


def listed(watchlist) -> dict[str, tuple]:
    return {e.plate_normalized: (e.plate, e.note, e.expires_at) for e in watchlist.entries.all()}


def test_merge_adds_new_plates_and_updates_the_note_and_expiry_of_listed_ones(manager, stolen):
    stolen.entries.create(plate="34ABC123", plate_normalized="34A8C123", note="old note")
    stolen.entries.create(plate="06XYZ77", plate_normalized="06XY277", note="kept as it is")

    outcome = imported(
        manager, stolen, "plate,note,expires_at\n34 abc 123,reported stolen,2026-12-31\n35 KLM 900,,\n", "merge"
    )

    assert outcome == {"added": 1, "updated": 1, "removed": 0, "errors": []}
    assert listed(stolen) == {
        # The plate keeps the spelling it was listed with; note and expiry come from the file.
        "34A8C123": ("34ABC123", "reported stolen", datetime(2026, 12, 31, tzinfo=UTC)),
        "06XY277": ("06XYZ77", "kept as it is", None),
        "35KLM900": ("35 KLM 900", "", None),
    }


def test_merge_is_the_default_mode_and_counts_only_real_changes(manager, stolen):
    stolen.entries.create(plate="34ABC123", plate_normalized="34A8C123", note="same")

    outcome = imported(manager, stolen, "plate,note,expires_at\n34ABC123,same,\n")

    assert outcome == {"added": 0, "updated": 0, "removed": 0, "errors": []}


def test_replace_also_removes_the_entries_the_file_does_not_name(manager, stolen):
    stolen.entries.create(plate="34ABC123", plate_normalized="34A8C123")
    stolen.entries.create(plate="06XYZ77", plate_normalized="06XY277")
    other = Watchlist.objects.create(name="unpaid tolls")
    other.entries.create(plate="06XYZ77", plate_normalized="06XY277")

    outcome = imported(manager, stolen, "plate,note,expires_at\n34ABC123,,\n35KLM900,,\n", "replace")

    assert outcome == {"added": 1, "updated": 0, "removed": 1, "errors": []}
    assert set(listed(stolen)) == {"34A8C123", "35KLM900"}
    assert set(listed(other)) == {"06XY277"}  # another list is not touched


def test_bad_lines_are_reported_by_line_number_and_the_rest_imported(manager, stolen):
    text = (
        "plate,note,expires_at\n"  # line 1
        "34ABC123,good,\n"  # 2
        "---,no plate,\n"  # 3
        "\n"  # 4: blank lines are skipped
        "35KLM900,,next week\n"  # 5
        '"06 XYZ 77","a note, quoted\nover two lines",\n'  # 6 and 7: a quote must close on its line
        "34 A8C 123,the same as line 2,\n"  # 8
        "41AB1,,,surplus\n"  # 9
        "07ABC01,,2026-01-01T00:00:00+02:00\n"  # 10
        '41CD2,"a note, quoted",\n'  # 11
    )

    outcome = imported(manager, stolen, text)

    assert [error["line"] for error in outcome["errors"]] == [3, 5, 6, 7, 8, 9]
    details = [error["detail"] for error in outcome["errors"]]
    assert details[0].startswith("plate:")
    assert details[1].startswith("expires_at:")
    assert details[2].startswith("not CSV: a quote on this line is not closed")
    assert details[3].startswith("not CSV: a quote on this line is not closed")
    assert "line 2" in details[4]
    assert "4 fields" in details[5]
    assert (outcome["added"], outcome["updated"], outcome["removed"]) == (3, 0, 0)
    assert listed(stolen) == {
        "34A8C123": ("34ABC123", "good", None),
        "41CD2": ("41CD2", "a note, quoted", None),
        "07A8C01": ("07ABC01", "", datetime(2025, 12, 31, 22, tzinfo=UTC)),
    }


STRAY_QUOTE = 'plate,note\n12 AB 3,"stolen\n34 ABC 123,keep\n77 NEW 777,keep\n'


def test_a_quote_left_open_is_an_error_of_its_line_and_the_lines_after_it_are_read(manager, stolen):
    outcome = imported(manager, stolen, STRAY_QUOTE, "merge")

    assert [error["line"] for error in outcome["errors"]] == [2]
    assert "quote" in outcome["errors"][0]["detail"]
    assert set(listed(stolen)) == {"34A8C123", "77NEW777"}


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("34ABC123,stolen,not a date", id="a bad expiry"),
        pytest.param('12 AB 3,"stolen', id="a quote left open"),
        pytest.param('"34ABC123"x,stolen', id="text after a closing quote"),
        pytest.param("34ABC123,stolen,,surplus", id="a field too many"),
    ],
)
def test_a_replace_with_a_bad_line_is_a_422_listing_every_error_and_changes_nothing(manager, stolen, line):
    stolen.entries.create(plate="34ABC123", plate_normalized="34A8C123", note="stolen")
    stolen.entries.create(plate="06XYZ77", plate_normalized="06XY277", note="unpaid")
    before = listed(stolen)
    revision = config.revision()

    response = post_csv(manager, stolen, f"plate,note,expires_at\n35KLM900,new,\n{line}\n---,,\n", "replace")

    assert response.status_code == 422, response.content
    body = response.json()
    assert body["error"] == "import_refused"
    assert "2 lines are bad" in body["detail"]
    assert [error["line"] for error in body["errors"]] == [3, 4]
    assert listed(stolen) == before
    assert config.revision() == revision


def test_the_stray_quote_of_a_replace_does_not_empty_the_list(manager, stolen):
    stolen.entries.create(plate="34ABC123", plate_normalized="34A8C123", note="keep")
    stolen.entries.create(plate="99XYZ99", plate_normalized="99XY299", note="stolen")

    response = post_csv(manager, stolen, STRAY_QUOTE, "replace")

    assert response.status_code == 422, response.content
    assert response.json()["errors"] == [{"line": 2, "detail": response.json()["errors"][0]["detail"]}]
    assert set(listed(stolen)) == {"34A8C123", "99XY299"}


def test_a_header_with_a_quote_left_open_is_a_400(manager, stolen):
    response = post_csv(manager, stolen, 'plate,"note\n34ABC123,x"\n', "replace")

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_csv"


def test_lines_end_as_an_editor_ends_them(manager, stolen):
    outcome = imported(manager, stolen, "plate,note\r\n34ABC123,a\r\n---,b\r06XYZ77,c\n", "merge")

    assert [error["line"] for error in outcome["errors"]] == [3]
    assert set(listed(stolen)) == {"34A8C123", "06XY277"}


def test_the_header_may_name_fewer_columns_in_any_order_and_carry_a_byte_order_mark(manager, stolen):
    outcome = imported(manager, stolen, "\ufeffNote,Plate\nreported stolen,34ABC123\n")

    assert outcome["added"] == 1
    assert listed(stolen) == {"34A8C123": ("34ABC123", "reported stolen", None)}


def test_a_body_in_another_charset_is_read_in_it(manager, stolen):
    response = post_csv(
        manager,
        stolen,
        "plate,note\n34ABC123,çalıntı Şahin\n".encode("iso-8859-9"),
        content_type="text/csv; charset=iso-8859-9",
    )

    assert response.status_code == 200, response.content
    assert listed(stolen)["34A8C123"][1] == "çalıntı Şahin"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("34ABC123,note,\n", id="no header"),
        pytest.param("plate,colour\n34ABC123,red\n", id="an unknown column"),
        pytest.param("plate,plate\n34ABC123,34ABC123\n", id="a column twice"),
    ],
)
def test_a_file_without_its_header_is_a_400_and_imports_nothing(manager, stolen, text):
    response = post_csv(manager, stolen, text)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_csv"
    assert not WatchlistEntry.objects.exists()


def test_an_unknown_mode_is_a_400(manager, stolen):
    response = post_csv(manager, stolen, "plate\n34ABC123\n", "append")

    assert response.status_code == 400
    assert response.json()["field"] == "mode"
    assert not WatchlistEntry.objects.exists()


def test_a_body_that_is_not_csv_is_a_415(manager, stolen):
    response = manager.post(f"/api/watchlists/{stolen.pk}/plates/import/", {"plate": "34ABC123"}, format="json")

    assert response.status_code == 415, response.content
    assert response.json()["error"] == "unsupported_media_type"


def test_a_body_that_is_not_utf_8_is_a_400(manager, stolen):
    response = post_csv(manager, stolen, b"plate\n\xff\xfe34ABC\n")

    assert response.status_code == 400, response.content
    assert not WatchlistEntry.objects.exists()


def test_importing_into_an_unknown_list_is_a_404(manager):
    response = post_csv(manager, Watchlist(pk=999), "plate\n34ABC123\n")

    assert response.status_code == 404


def test_anonymous_callers_may_not_import(stolen):
    assert post_csv(api_client(), stolen, "plate\n34ABC123\n").status_code == 401


def test_an_import_bumps_the_revision_once(manager, stolen):
    before = config.revision()

    imported(manager, stolen, "plate\n" + "".join(f"34AB{n:04}\n" for n in range(50)))

    assert config.revision() == before + 1


def ten_thousand_lines(prefix: str, note: str) -> str:
    return "plate,note,expires_at\n" + "".join(
        f"{prefix} {n:05},{note} {n},2027-01-{n % 28 + 1:02}T12:00:00Z\n" for n in range(10_000)
    )


def test_ten_thousand_plates_are_imported_in_one_request_in_bulk_statements(manager, stolen, capsys):
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        outcome = imported(manager, stolen, ten_thousand_lines("34 AB", "case"))
    elapsed = time.perf_counter() - started

    assert outcome == {"added": 10_000, "updated": 0, "removed": 0, "errors": []}
    assert stolen.entries.count() == 10_000
    entry = stolen.entries.get(plate_normalized="34A807777")
    assert (entry.plate, entry.note, entry.expires_at) == (
        "34 AB 07777",
        "case 7777",
        datetime(2027, 1, 22, 12, tzinfo=UTC),
    )
    # A statement a batch of rows (thousands on MariaDB, ~160 on SQLite), not one a plate.
    assert len(queries.captured_queries) < 100, len(queries.captured_queries)
    with capsys.disabled():
        print(f"\n10,000-plate import (all new): {elapsed:.2f} s, {len(queries.captured_queries)} queries")


def test_ten_thousand_plates_replace_ten_thousand_in_one_request(manager, stolen, capsys):
    imported(manager, stolen, ten_thousand_lines("34 AB", "case"))
    # Half the plates again with a new note, half new ones: the other half goes.
    half_again = "".join(f"34 AB {n:05},renewed {n},\n" for n in range(5_000))
    half_new = "".join(f"06 CD {n:05},,\n" for n in range(5_000))

    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        outcome = imported(manager, stolen, "plate,note,expires_at\n" + half_again + half_new, "replace")
    elapsed = time.perf_counter() - started

    assert outcome == {"added": 5_000, "updated": 5_000, "removed": 5_000, "errors": []}
    assert stolen.entries.count() == 10_000
    assert stolen.entries.get(plate_normalized="34A800042").note == "renewed 42"
    assert not stolen.entries.filter(plate_normalized="34A809999").exists()
    assert len(queries.captured_queries) < 100, len(queries.captured_queries)
    with capsys.disabled():
        print(f"\n10,000-plate import (replace: 5,000 added, updated, removed): {elapsed:.2f} s")
