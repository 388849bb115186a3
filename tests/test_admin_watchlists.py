"""The admin's watch-lists, entries, CSV import (preview, then confirm), rules
and alerts."""

import json

import pytest
from admin_pages import changelist_rows, page_messages, text
from alert_helpers import store_alert
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from detections.alerts import config
from detections.alerts.entries import new_entry
from detections.models import Alert, AlertRule, Watchlist, WatchlistEntry

pytestmark = pytest.mark.django_db

WATCHLISTS = reverse("admin:detections_watchlist_changelist")
ENTRIES = reverse("admin:detections_watchlistentry_changelist")
ALERTS = reverse("admin:detections_alert_changelist")


def add_entries(watchlist, *plates) -> list[WatchlistEntry]:
    added = [new_entry(watchlist, plate) for plate in plates]
    for entry in added:
        entry.save()
    return added


def test_the_watchlist_list_shows_plate_and_rule_counts(admin_client, stolen):
    empty = Watchlist.objects.create(name="unpaid tolls")
    add_entries(stolen, "34ABC123", "06XYZ77")
    AlertRule.objects.create(name="at the gates", watchlist=stolen)

    rows = changelist_rows(admin_client.get(WATCHLISTS))

    assert (text(rows[stolen.pk]["plate_count"]), text(rows[stolen.pk]["rule_count"])) == ("2", "1")
    assert (text(rows[empty.pk]["plate_count"]), text(rows[empty.pk]["rule_count"])) == ("0", "0")


def test_a_watchlist_is_switched_off_from_the_list(admin_client, stolen):
    before = config.revision()
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(stolen.pk),
        # form-0-active left out: the checkbox unticked
        "_save": "Save",
    }

    response = admin_client.post(WATCHLISTS, form)

    assert response.status_code == 302, response.content
    stolen.refresh_from_db()
    assert stolen.active is False
    assert config.revision() > before


def test_the_entry_search_finds_look_alike_spellings(admin_client, stolen):
    typed_with_digits, _ = add_entries(stolen, "34A8C123", "06XYZ77")
    (typed_with_letters,) = add_entries(Watchlist.objects.create(name="unpaid tolls"), "34 ABC-123")

    found = set(changelist_rows(admin_client.get(ENTRIES, {"q": "34 abc 123"})))
    by_part = set(changelist_rows(admin_client.get(ENTRIES, {"q": "abc1"})))

    assert found == {typed_with_digits.pk, typed_with_letters.pk}
    assert by_part == {typed_with_digits.pk, typed_with_letters.pk}


def test_the_entry_list_filters_by_watchlist(admin_client, stolen):
    other = Watchlist.objects.create(name="unpaid tolls")
    (mine,) = add_entries(stolen, "34ABC123")
    add_entries(other, "06XYZ77")

    rows = changelist_rows(admin_client.get(ENTRIES, {"watchlist__id__exact": stolen.pk}))

    assert set(rows) == {mine.pk}


def test_an_entry_added_in_the_admin_gets_its_normal_form_and_a_look_alike_is_refused(admin_client, stolen):
    add = reverse("admin:detections_watchlistentry_add")

    added = admin_client.post(add, {"watchlist": stolen.pk, "plate": "34 abc 123", "note": "", "expires_at": ""})
    refused = admin_client.post(add, {"watchlist": stolen.pk, "plate": "34A8C-i23", "note": "", "expires_at": ""})

    assert added.status_code == 302, added.content
    assert WatchlistEntry.objects.get().plate_normalized == "34A8C123"
    assert refused.status_code == 200
    assert "is on this list already" in refused.content.decode()
    assert WatchlistEntry.objects.count() == 1


IMPORT_CSV = "plate,note,expires_at\n34 ABC 123,now stolen,\n35KLM900,,\n"
BAD_LINE = "bad-plate-that-is-far-too-long-to-be-a-plate,,\n"


def test_the_import_is_previewed_then_confirmed(admin_client, stolen):
    add_entries(stolen, "34ABC123", "06XYZ77")
    change_page = admin_client.get(reverse("admin:detections_watchlist_change", args=[stolen.pk])).content.decode()
    import_url = reverse("admin:detections_watchlist_import", args=[stolen.pk])
    assert import_url in change_page

    preview = admin_client.post(
        import_url,
        {"csv_file": SimpleUploadedFile("plates.csv", IMPORT_CSV.encode()), "mode": "replace", "_preview": "Preview"},
    )

    assert preview.status_code == 200, preview.content
    summary = preview.context["preview"]
    assert (summary["added"], summary["updated"], summary["removed"]) == (1, 1, 1)
    assert (summary["errors"], summary["refused"]) == ([], False)
    page = preview.content.decode()
    assert 'class="removed">1<' in page and 'name="_confirm"' in page
    assert set(stolen.entries.values_list("plate_normalized", flat=True)) == {"34A8C123", "06XY277"}  # not yet

    confirmed = admin_client.post(
        import_url, {"csv_text": IMPORT_CSV, "mode": "replace", "_confirm": "Confirm"}, follow=True
    )

    assert confirmed.redirect_chain[-1][0] == reverse("admin:detections_watchlist_change", args=[stolen.pk])
    assert set(stolen.entries.values_list("plate_normalized", flat=True)) == {"34A8C123", "35KLM900"}
    assert stolen.entries.get(plate_normalized="34A8C123").note == "now stolen"
    assert page_messages(confirmed) == ["Imported into stolen vehicles: 1 added, 1 updated, 1 removed."]


def test_a_merge_skips_bad_lines_and_says_how_many(admin_client, stolen):
    confirmed = admin_client.post(
        reverse("admin:detections_watchlist_import", args=[stolen.pk]),
        {"csv_text": IMPORT_CSV + BAD_LINE, "mode": "merge", "_confirm": "Confirm"},
        follow=True,
    )

    assert page_messages(confirmed) == [
        "Imported into stolen vehicles: 2 added, 0 updated, 0 removed; 1 bad line(s) skipped."
    ]


def test_a_replace_with_a_bad_line_is_refused_and_changes_nothing(admin_client, stolen):
    add_entries(stolen, "34ABC123", "06XYZ77")
    import_url = reverse("admin:detections_watchlist_import", args=[stolen.pk])
    form = {"csv_text": IMPORT_CSV + BAD_LINE, "mode": "replace"}

    preview = admin_client.post(import_url, {**form, "_preview": "Preview"})

    assert preview.context["preview"]["refused"] is True
    page = preview.content.decode()
    assert 'id="import-refused"' in page and 'class="line">4<' in page
    assert 'name="_confirm"' not in page

    confirmed = admin_client.post(import_url, {**form, "_confirm": "Confirm"})

    assert confirmed.status_code == 200
    assert "a replace changes nothing unless every line is good" in confirmed.content.decode()
    assert set(stolen.entries.values_list("plate_normalized", flat=True)) == {"34A8C123", "06XY277"}


def test_an_import_without_its_header_is_refused_on_the_form(admin_client, stolen):
    response = admin_client.post(
        reverse("admin:detections_watchlist_import", args=[stolen.pk]),
        {"csv_text": "34ABC123\n", "mode": "merge", "_preview": "Preview"},
    )

    assert response.status_code == 200
    assert "header" in response.content.decode()
    assert response.context["preview"] is None
    assert not WatchlistEntry.objects.exists()


def test_the_import_needs_the_change_permission(client, stolen):
    User.objects.create_user("clerk", password="pw", is_staff=True)
    client.login(username="clerk", password="pw")

    response = client.get(reverse("admin:detections_watchlist_import", args=[stolen.pk]))

    assert response.status_code == 403


def test_the_rule_form_checks_conditions_as_the_api_does(admin_client, stolen):
    form = {
        "name": "at night",
        "watchlist": stolen.pk,
        "cameras": '["gate-1"]',
        "vehicle_types": '["Car"]',
        "min_confidence": "",
        "cooldown_seconds": "0",
        "active": "on",
    }
    add = reverse("admin:detections_alertrule_add")

    refused = admin_client.post(add, {**form, "schedule": json.dumps({"days": [7], "from": "22:00", "to": "06:00"})})
    added = admin_client.post(add, {**form, "schedule": json.dumps({"days": [4], "from": "22:00", "to": "06:00"})})

    assert refused.status_code == 200 and "days 0-6" in refused.content.decode()
    assert added.status_code == 302, added.content
    rule = AlertRule.objects.get()
    assert (rule.vehicle_types, rule.schedule["tz"]) == (["car"], "UTC")


def test_alerts_are_filtered_by_acknowledgement_and_acknowledged_once(admin_client, stolen):
    rule = AlertRule.objects.create(name="at the gates", watchlist=stolen)
    first, second = store_alert(rule=rule, minutes=1), store_alert(rule=rule, minutes=2)
    colleague = User.objects.create_user("colleague")
    Alert.objects.filter(pk=second.pk).update(acknowledged_at=second.created_at, acknowledged_by=colleague)

    open_alerts = set(changelist_rows(admin_client.get(ALERTS, {"acknowledged": "no"})))
    response = admin_client.post(
        ALERTS, {"action": "acknowledge_selected", "_selected_action": [first.pk, second.pk]}, follow=True
    )

    assert open_alerts == {first.pk}
    assert page_messages(response) == ["Acknowledged 1 alert(s); 1 had been acknowledged before."]
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.acknowledged_by.username == "admin" and first.acknowledged_at is not None
    assert (second.acknowledged_by, second.acknowledged_at) == (colleague, second.created_at)


def test_alerts_are_read_only_in_the_admin(admin_client):
    alert = store_alert()

    page = admin_client.get(reverse("admin:detections_alert_change", args=[alert.pk]))

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:detections_alert_add")).status_code == 403
