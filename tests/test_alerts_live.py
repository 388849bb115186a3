"""Alerts through a real server: raised by every ingest path, pushed on the
socket with their own seq to the users who may view them, replayed on resume,
narrowed by `subscribe` types, and never sent to an anonymous socket."""

import json

import pytest
from conftest import ServerProcess, detection_body
from django.contrib.auth.models import Permission, User
from feed_client import assert_nothing_else_queued, connect, receive, receive_events
from rest_framework.authtoken.models import Token
from standardwebhooks import Webhook
from webhook_helpers import ReceiverProcess, WorkerProcess, make_endpoint
from websockets.sync.client import connect as ws_connect

from detections.alerts.plates import normalize
from detections.models import Alert, AlertRule, Watchlist, WatchlistEntry


@pytest.fixture
def stolen_list(transactional_db):
    watchlist = Watchlist.objects.create(name="stolen vehicles", max_edits=1)
    entry = WatchlistEntry.objects.create(
        watchlist=watchlist, plate="34 ABC 123", plate_normalized=normalize("34 ABC 123")
    )
    AlertRule.objects.create(name="stolen at the gates", watchlist=watchlist, cameras=["gate-1", "gate-2"])
    return entry


@pytest.fixture
def operator_token(transactional_db) -> str:
    """A user allowed to view alerts."""
    user = User.objects.create_user("operator")
    user.user_permissions.add(Permission.objects.get(codename="view_alert"))
    return Token.objects.create(user=user).key


def post(http, **body) -> dict:
    response = http.post("/api/detect", json=detection_body(**body))
    assert response.status_code == 201, response.text
    return response.json()


def test_a_watched_plate_reaches_an_operators_socket_as_an_alert_right_after_its_detection(
    server, stolen_list, operator_token
):
    with server.device() as http, connect(server, token=operator_token) as ws:
        stored = post(http, id="trk-1", plate="34-A8C-124")

        created, alert = receive_events(ws, 2)
        assert created["type"] == "new_detection"
        assert alert["type"] == "alert"
        assert alert["seq"] == created["seq"] + 1
        assert (alert["rule"], alert["watchlist"], alert["entry_id"]) == (
            "stolen at the gates",
            "stolen vehicles",
            stolen_list.pk,
        )
        assert (alert["matched_plate"], alert["distance"]) == ("34 ABC 123", 1)
        assert alert["alert_id"] == Alert.objects.get().pk
        assert alert["detection"]["id"] == stored["id"]
        assert alert["detection"]["plate"] == "34-A8C-124"
        assert "image" not in alert["detection"]
        assert_nothing_else_queued(ws)


def test_a_viewer_without_the_permission_gets_the_detection_but_never_the_alert(server, stolen_list):
    with server.device() as http, connect(server) as ws:
        post(http, id="trk-1", plate="34ABC123")
        assert receive(ws)["type"] == "new_detection"
        assert_nothing_else_queued(ws)
    assert Alert.objects.count() == 1


def test_a_resuming_operator_gets_the_alerts_it_missed_in_seq_order(server, stolen_list, operator_token):
    with server.device() as http:
        with connect(server, token=operator_token) as ws:
            post(http, id="trk-0", plate="11AAA11")
            last_seen = receive(ws)["seq"]
        post(http, id="trk-1", plate="34ABC123")
        post(http, id="trk-2", plate="22BBB22")

        with connect(server, after=last_seen, token=operator_token) as ws:
            missed = receive_events(ws, 3)
            assert [m["type"] for m in missed] == ["new_detection", "alert", "new_detection"]
            assert [m["seq"] for m in missed] == [last_seen + 1, last_seen + 2, last_seen + 3]
            assert_nothing_else_queued(ws)


def test_subscribing_to_alerts_only_narrows_the_feed_to_them(server, stolen_list, operator_token):
    with server.device() as http, connect(server, token=operator_token) as ws:
        ws.send(json.dumps({"type": "subscribe", "types": ["alert"]}))
        assert receive(ws) == {"type": "subscribed", "cameras": None, "vehicle_types": None, "types": ["alert"]}
        post(http, id="trk-0", plate="11AAA11")
        post(http, id="trk-1", plate="34ABC123")

        assert receive(ws)["type"] == "alert"
        assert_nothing_else_queued(ws)


def test_an_unknown_type_in_subscribe_is_an_error_naming_it(server, operator_token):
    with connect(server, token=operator_token) as ws:
        ws.send(json.dumps({"type": "subscribe", "types": ["alert", "gossip"]}))
        error = receive(ws)
        assert (error["type"], error["code"]) == ("error", "invalid_message")
        assert "gossip" in error["detail"]


def test_a_batch_raises_the_alerts_of_its_matching_items(server, stolen_list, operator_token):
    bodies = [detection_body(id=f"trk-{n}", plate=plate) for n, plate in enumerate(["34ABC123", "99ZZZ99"])]
    with server.device() as http, connect(server, token=operator_token) as ws:
        response = http.post("/api/detections/batch/", json={"detections": bodies})
        assert response.status_code == 200, response.text

        kinds = [m["type"] for m in receive_events(ws, 3)]
        assert sorted(kinds) == ["alert", "new_detection", "new_detection"]
        assert_nothing_else_queued(ws)


def test_an_anonymous_socket_of_the_public_feed_never_receives_an_alert(
    transactional_db, _media_root, credentials, stolen_list
):
    with ServerProcess(_media_root, credentials, extra_env={"PUBLIC_FEED": "true"}) as server:
        with server.device() as http, ws_connect(f"{server.ws_url}/ws", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "subscribe", "types": ["alert", "new_detection"]}))
            assert receive(ws)["types"] == ["new_detection"]
            post(http, id="trk-1", plate="34ABC123")
            assert receive(ws)["type"] == "new_detection"
            assert_nothing_else_queued(ws)
        assert Alert.objects.count() == 1


def test_the_alert_reaches_a_webhook_signed_and_the_socket_from_one_post(
    server, stolen_list, operator_token, tmp_path, settings
):
    with ReceiverProcess(tmp_path) as receiver:
        endpoint, secret = make_endpoint(receiver.url, events=["alert.triggered"])
        with WorkerProcess(), server.device() as http, connect(server, token=operator_token) as ws:
            stored = post(http, id="trk-1", plate="34ABC124")
            created, alert = receive_events(ws, 2)
            (request,) = receiver.wait_for_requests(1)

    body = Webhook(secret).verify(request["body"], request["headers"])
    assert body["type"] == "alert.triggered"
    assert body["seq"] == alert["seq"]
    assert body["data"]["alert_id"] == alert["alert_id"]
    assert body["data"]["detection"]["id"] == stored["id"]
    assert body["data"]["matched_plate"] == "34 ABC 123"
    assert body["data"]["detection"]["thumbnail_url"].startswith(settings.PUBLIC_BASE_URL + "/media/")
    assert not set(body["data"]) & {"type", "seq", "image"}


def test_the_worker_sends_as_soon_as_the_change_commits_not_at_its_next_poll(server, tmp_path):
    with ReceiverProcess(tmp_path) as receiver:
        make_endpoint(receiver.url, events=["detection.created"])
        # A poll so long that only the wake-up on commit can deliver within the wait below.
        with WorkerProcess("--poll", "60"), server.device() as http:
            stored = post(http, id="trk-1")
            (request,) = receiver.wait_for_requests(1, timeout=15)

    assert json.loads(request["body"])["data"]["id"] == stored["id"]
