"""A WebSocket client of the feed, as a test drives it."""

import json
import uuid
from urllib.parse import urlencode

from websockets.sync.client import connect as ws_connect


def connect(server, path="/ws", after: int | None = None, *, token: str | None = None, headers=None):
    """A viewer's socket; the token (the server's viewer token by default) goes as ?token=."""
    query = {"token": token or server.credentials.viewer}
    if after is not None:
        query["after"] = after
    return ws_connect(f"{server.ws_url}{path}?{urlencode(query)}", open_timeout=10, additional_headers=headers)


def receive(ws, timeout=10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def receive_events(ws, n: int, timeout=10.0) -> list[dict]:
    return [receive(ws, timeout) for _ in range(n)]


def assert_nothing_else_queued(ws):
    """Everything the server sent before it answers a ping has arrived before the
    pong, so a pong right away proves no further event was on its way."""
    marker = {"type": "ping"}
    ws.send(json.dumps(marker))
    message = receive(ws)
    assert message == {"type": "pong"}, f"expected no more events, got {message}"


def unique_id(prefix="trk") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
