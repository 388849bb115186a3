"""Reading the Django admin's pages as a test sees them."""

import re
from html import unescape
from urllib.parse import urlencode

from django.urls import reverse

CHANGELIST = reverse("admin:detections_detection_changelist")

_ROW = re.compile(r"<tr>(.*?)</tr>", re.DOTALL)
_SELECTED = re.compile(r'name="_selected_action" value="(\d+)"')
_CELL = re.compile(r'<(td|th) class="field-(\w+)[^"]*">(.*?)</\1>', re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def changelist_rows(response) -> dict[int, dict[str, str]]:
    """The changelist's rows by object id: each column's cell as served (HTML)."""
    assert response.status_code == 200, response.status_code
    rows = {}
    for row in _ROW.findall(response.content.decode()):
        selected = _SELECTED.search(row)
        if selected:
            rows[int(selected.group(1))] = {column: html for _, column, html in _CELL.findall(row)}
    return rows


def text(cell_html: str) -> str:
    return unescape(_TAG.sub("", cell_html)).strip()


def confirm_bulk_delete(client, ids: list[int], **options):
    """Post the changelist's delete action with its confirmation, as the admin's
    "Yes, I'm sure" button does."""
    return client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"}, **options)


def listed_ids(admin_client, **query) -> set[int]:
    return set(changelist_rows(admin_client.get(f"{CHANGELIST}?{urlencode(query)}")))


def page_messages(response) -> list[str]:
    """The messages framework's messages a page shows."""
    return [str(message) for message in response.context["messages"]]


def detail_page(admin_client, detection) -> str:
    response = admin_client.get(reverse("admin:detections_detection_change", args=[detection.pk]))
    assert response.status_code == 200
    return response.content.decode()
