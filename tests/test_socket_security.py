"""The socket authenticates before it shows anything, checks where browsers
come from, limits what clients send, and keeps tokens out of the logs."""

import json

import pytest
from conftest import ServerProcess, on_every_server
from django.test import Client
from feed_client import assert_nothing_else_queued, receive
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect


def open_socket(server, query="", headers=None):
    return ws_connect(f"{server.ws_url}/ws{query}", open_timeout=10, additional_headers=headers)


def assert_closed_with(ws, code: int):
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == code


def assert_receives_detections(server, ws):
    with server.device() as http:
        stored = http.post("/api/detect", json=_body()).json()
    assert receive(ws)["id"] == stored["id"]


_counter = iter(range(10**6))


def _body():
    from conftest import detection_body

    return detection_body(id=f"sock-{next(_counter)}")


def session_cookie(django_user_model) -> str:
    django_user_model.objects.create_user("operator", password="pw-for-the-operator-1")
    client = Client()
    assert client.login(username="operator", password="pw-for-the-operator-1")
    return f"sessionid={client.cookies['sessionid'].value}"


@pytest.mark.parametrize(
    "query", ["", "?token=0123456789abcdef0123456789abcdef01234567", "?token=vmk_a-device-key-is-not-a-viewer"]
)
def test_a_socket_without_valid_viewer_credentials_is_closed_with_4401_before_any_event(server, query):
    with open_socket(server, query) as ws:
        assert_closed_with(ws, 4401)


def test_a_device_key_does_not_open_the_feed(server):
    with open_socket(server, f"?token={server.credentials.device}") as ws:
        assert_closed_with(ws, 4401)


def test_a_viewer_token_in_the_query_opens_the_feed(server):
    with open_socket(server, f"?token={server.credentials.viewer}") as ws:
        assert_receives_detections(server, ws)


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_a_viewer_token_in_the_authorization_header_opens_the_feed(server, scheme):
    with open_socket(server, headers={"Authorization": f"{scheme} {server.credentials.viewer}"}) as ws:
        assert_receives_detections(server, ws)


def test_a_browser_session_from_the_sites_own_origin_opens_the_feed(server, django_user_model):
    headers = {"Cookie": session_cookie(django_user_model), "Origin": f"http://127.0.0.1:{server.port}"}
    with open_socket(server, headers=headers) as ws:
        assert_receives_detections(server, ws)


def test_a_cross_site_origin_carrying_a_valid_session_is_refused_at_the_handshake(server, django_user_model):
    headers = {"Cookie": session_cookie(django_user_model), "Origin": "http://evil.example"}
    with pytest.raises(InvalidStatus) as refused:
        open_socket(server, headers=headers)
    assert refused.value.response.status_code == 403


def test_a_native_app_without_origin_must_still_bring_a_token(server, django_user_model):
    with open_socket(server) as ws:
        assert_closed_with(ws, 4401)


def test_an_oversized_client_message_closes_the_socket_with_4413(server):
    with open_socket(server, f"?token={server.credentials.viewer}") as ws:
        ws.send(json.dumps({"type": "ping", "padding": "x" * 5000}))
        assert_closed_with(ws, 4413)


def test_a_client_flooding_the_server_is_cut_off_with_4429(transactional_db, _media_root, credentials):
    with ServerProcess(_media_root, credentials, extra_env={"SOCKET_MAX_MESSAGES_PER_MINUTE": "5"}) as server:
        with open_socket(server, f"?token={credentials.viewer}") as ws:
            for _ in range(5):
                ws.send(json.dumps({"type": "ping"}))
                assert receive(ws) == {"type": "pong"}
            ws.send(json.dumps({"type": "ping"}))
            assert_closed_with(ws, 4429)


def test_the_public_feed_setting_opens_the_socket_to_anyone(transactional_db, _media_root, credentials):
    with ServerProcess(_media_root, credentials, extra_env={"PUBLIC_FEED": "true"}) as server:
        with open_socket(server) as ws:
            assert_receives_detections(server, ws)
            assert_nothing_else_queued(ws)


# --- Pages of other origins that SOCKET_ALLOWED_ORIGINS lets in -------------------------------

# The seed's own browser client: a page opened from a file, so its Origin is "null".
SEED_CLIENT_PAGE = """<!doctype html><meta charset="utf-8"><title>feed</title>
<script>
  window.received = [];
  window.socket = new WebSocket("ws://127.0.0.1:PORT/ws");
  window.socket.onmessage = (event) => window.received.push(JSON.parse(event.data));
</script>"""


def test_a_null_origin_is_refused_unless_the_setting_lists_it(server):
    with pytest.raises(InvalidStatus) as refused:
        open_socket(server, headers={"Origin": "null"})
    assert refused.value.response.status_code == 403


def test_the_seeds_browser_client_opened_from_a_file_reads_the_public_feed(
    transactional_db, _media_root, credentials, tmp_path
):
    from playwright.sync_api import sync_playwright
    from test_dashboard import CHROMIUM, CHROMIUM_ARGS

    env = {"PUBLIC_FEED": "true", "SOCKET_ALLOWED_ORIGINS": "null"}
    with ServerProcess(_media_root, credentials, env) as server, sync_playwright() as playwright:
        page_file = tmp_path / "client.html"
        page_file.write_text(SEED_CLIENT_PAGE.replace("PORT", str(server.port)))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_function("window.socket.readyState === WebSocket.OPEN")
            with server.device() as http:
                stored = http.post("/api/detect", json=_body()).json()
            with server.staff() as http:
                assert http.delete(f"/api/delete/{stored['id']}").status_code == 200
            page.wait_for_function("window.received.some((m) => m.type === 'deletion')", timeout=10_000)
            received = page.evaluate("window.received")
        finally:
            browser.close()
    assert [m["type"] for m in received] == ["new_detection", "deletion"]
    assert received[0]["id"] == received[1]["deleted_id"] == stored["id"]


def test_a_session_cookie_sent_from_an_allowed_foreign_origin_grants_nothing(
    transactional_db, _media_root, credentials, django_user_model
):
    cookie = session_cookie(django_user_model)
    with ServerProcess(_media_root, credentials, {"SOCKET_ALLOWED_ORIGINS": "null"}) as server:
        with open_socket(server, headers={"Origin": "null", "Cookie": cookie}) as ws:
            assert_closed_with(ws, 4401)
        # The same page with a viewer token reads the feed.
        with open_socket(server, f"?token={credentials.viewer}", headers={"Origin": "null", "Cookie": cookie}) as ws:
            assert_receives_detections(server, ws)


@on_every_server
def test_no_request_or_socket_path_writes_a_token_into_the_log(server):
    credentials = server.credentials
    secrets = [credentials.device, credentials.viewer, credentials.staff]
    with open_socket(server, f"?token={credentials.viewer}") as ws:
        assert_receives_detections(server, ws)
    with open_socket(server, headers={"Authorization": f"Token {credentials.viewer}"}) as ws:
        ws.send("not json")
        receive(ws)
    with open_socket(server, "?token=0123456789abcdef0123456789abcdef01234567") as ws:
        assert_closed_with(ws, 4401)
    with server.http(credentials.viewer) as http:
        http.get("/api/stats")
        http.get(f"/api/stats?token={credentials.viewer}")  # a client's mistake, still not logged
        http.get(f"/ws?token={credentials.viewer}")  # a socket whose upgrade a proxy dropped
        http.post("/api/detect", json=_body())  # 403: a viewer cannot post
    with server.http("vmk_wrong") as http:
        http.post("/api/detect", json=_body())  # 401
    with server.staff() as http:
        http.delete("/api/delete/999999")  # 404
    server.stop()  # flush and collect everything it printed
    log = "".join(server.output)
    socket_line = "WSCONNECT /ws" if server.kind == "daphne" else '"WebSocket /ws'
    assert socket_line in log and "/api/stats" in log  # the log is there...
    for secret in secrets + ["vmk_wrong", "0123456789abcdef0123456789abcdef01234567"]:
        assert secret not in log  # ...and holds no token
