"""GET /api/detections/?plate_like=...&max_edits=N finds plates the camera
misread: compared in their normal form, within N edits, newest first."""

from datetime import timedelta

import pytest
from conftest import MOMENT, store_detection
from helpers import list_ids

from detections.models import Detection

pytestmark = pytest.mark.django_db


@pytest.fixture
def plates_seen():
    """Each plate once, a second apart, newest last."""
    spellings = ["34ABC123", "34 A8C-123", "34ABC124", "34ABC12", "34ABD124", "06XYZ999", ""]
    return {
        plate: store_detection(f"trk-{n}", plate=plate, detected_at=MOMENT + timedelta(seconds=n), with_image=False)
        for n, plate in enumerate(spellings)
    }


def ids(plates_seen, *plates) -> list[int]:
    return [plates_seen[p].pk for p in reversed(plates)]  # newest first


def test_max_edits_0_finds_every_spelling_of_the_same_normal_form(viewer_client, plates_seen):
    assert list_ids(viewer_client, plate_like="34abc123", max_edits=0) == ids(plates_seen, "34ABC123", "34 A8C-123")


def test_max_edits_1_is_the_default_and_adds_plates_one_edit_away(viewer_client, plates_seen):
    within_one = ids(plates_seen, "34ABC123", "34 A8C-123", "34ABC124", "34ABC12")
    assert list_ids(viewer_client, plate_like="34ABC123") == within_one
    assert list_ids(viewer_client, plate_like="34ABC123", max_edits=1) == within_one


def test_max_edits_2_reaches_two_edits(viewer_client, plates_seen):
    assert list_ids(viewer_client, plate_like="34ABC123", max_edits=2) == ids(
        plates_seen, "34ABC123", "34 A8C-123", "34ABC124", "34ABC12", "34ABD124"
    )


def test_plate_like_combines_with_the_other_filters(viewer_client, plates_seen):
    since = (MOMENT + timedelta(seconds=1)).isoformat()
    assert list_ids(viewer_client, plate_like="34ABC123", max_edits=0, since=since) == ids(plates_seen, "34 A8C-123")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"plate_like": "34ABC123", "max_edits": "3"}, "max_edits"),
        ({"plate_like": "34ABC123", "max_edits": "one"}, "max_edits"),
        ({"plate_like": " - . "}, "plate_like"),
    ],
)
def test_a_bad_plate_like_query_is_a_400_naming_the_parameter(viewer_client, plates_seen, params, field):
    response = viewer_client.get("/api/detections/", params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_new_detections_store_their_normal_plate(plates_seen):
    assert Detection.objects.get(pk=plates_seen["34 A8C-123"].pk).plate_normalized == "34A8C123"
