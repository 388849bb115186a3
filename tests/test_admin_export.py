"""The admin's export action: the selected detections as CSV."""

import csv
import io
from datetime import timedelta

import pytest
from admin_pages import CHANGELIST
from conftest import MOMENT, store_detection
from django.http import StreamingHttpResponse

pytestmark = pytest.mark.django_db


def test_the_export_action_downloads_the_selected_detections_as_csv(admin_client):
    chosen = [
        store_detection("trk-1", plate="=1+1"),
        store_detection("trk-2", detected_at=MOMENT + timedelta(seconds=1)),
    ]
    store_detection("trk-3")

    response = admin_client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [d.pk for d in chosen]})

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="detections-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["tracking_id"] for row in rows] == ["trk-1", "trk-2"]
    assert rows[0]["plate"] == "'=1+1"
