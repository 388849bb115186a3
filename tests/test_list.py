"""Reading detections back: GET /api/detections/, its filters and cursor pages,
and GET /api/detections/{id}/ (protocol.md, Statistics and history)."""

import pytest
from helpers import assert_not_found_json, newest_first, post_detection

pytestmark = pytest.mark.django_db


def test_the_list_is_newest_first_with_every_field(viewer_client, traffic):
    response = viewer_client.get("/api/detections/")

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [item["id"] for item in results] == newest_first(traffic)
    assert results[0] == traffic[-1]


@pytest.mark.parametrize(
    "params, expected",
    [
        pytest.param({"camera": "gate-1"}, ["trk-2", "trk-1"], id="camera"),
        pytest.param({"vehicle_type": "car"}, ["trk-3", "trk-1"], id="vehicle_type"),
        pytest.param({"since": "2026-11-24T09:00:00Z"}, ["trk-1", "trk-4", "trk-3"], id="since inclusive"),
        pytest.param({"until": "2026-11-24T09:00:00Z"}, ["trk-2", "trk-1"], id="until exclusive"),
        pytest.param(
            {"since": "2026-11-24T08:15:00Z", "until": "2026-11-24T09:45:00Z"}, ["trk-4", "trk-3", "trk-2"], id="window"
        ),
        pytest.param({"tracking_id": "trk-1"}, ["trk-1", "trk-1"], id="tracking_id"),
        pytest.param({"plate": "34ABC123"}, ["trk-4", "trk-1"], id="plate"),
        pytest.param({"camera": "gate-2", "vehicle_type": "car"}, ["trk-3"], id="camera and vehicle_type"),
        pytest.param({"camera": "gate-9"}, [], id="unknown camera"),
    ],
)
def test_the_list_filters(viewer_client, traffic, params, expected):
    response = viewer_client.get("/api/detections/", params)

    assert response.status_code == 200, response.content
    assert [item["tracking_id"] for item in response.json()["results"]] == expected


def test_an_invalid_filter_value_answers_400_json(viewer_client, traffic):
    response = viewer_client.get("/api/detections/", {"vehicle_type": "spaceship"})

    assert response.status_code == 400, response.content
    assert response.json()["error"] and response.json()["detail"]


def test_cursor_pages_walk_every_detection_once_newest_first(device_client, viewer_client, traffic):
    # Two more at the same instant as another: ties are where offset-free paging slips.
    ties = [post_detection(device_client, id=f"tie-{n}", camera="yard", time="2026-11-24T09:00:00Z") for n in range(2)]
    pages, url = [], "/api/detections/?page_size=2"
    while url:
        response = viewer_client.get(url)
        assert response.status_code == 200, response.content
        pages.append([item["id"] for item in response.json()["results"]])
        url = response.json()["next"]

    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [i for page in pages for i in page] == newest_first(traffic + ties)


def test_the_previous_link_leads_back_to_the_first_page(viewer_client, traffic):
    first = viewer_client.get("/api/detections/", {"page_size": 2}).json()
    assert first["previous"] is None

    second = viewer_client.get(first["next"]).json()
    back = viewer_client.get(second["previous"]).json()

    assert [item["id"] for item in back["results"]] == [item["id"] for item in first["results"]]


def test_retrieving_one_detection_answers_it(viewer_client, traffic):
    response = viewer_client.get(f"/api/detections/{traffic[2]['id']}/")

    assert response.status_code == 200, response.content
    assert response.json() == traffic[2]


@pytest.mark.parametrize("pk", [999_999_999, "abc"])
def test_retrieving_an_unknown_detection_answers_404_json(viewer_client, traffic, pk):
    assert_not_found_json(viewer_client.get(f"/api/detections/{pk}/"))
