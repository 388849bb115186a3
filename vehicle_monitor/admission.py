"""How many HTTP requests a server process takes on at once, and what the rest get.

A process whose CPU is spent does not serve more by accepting more: every
request it takes only waits longer, until clients and proxies give up on it and
break the connection, which tells a camera nothing it can act on. So a process
has HTTP_MAX_IN_FLIGHT requests in progress at most (from their headers until
their answer is sent); one more is answered at once, on the event loop, before
its body is read, with

    503 {"error": "overloaded", "detail": "..."}   Retry-After: 1

and nothing done. Edge units retry after Retry-After, as for any 503
(docs/protocol.md). A load balancer in front should hold fewer than this many
requests at each process and queue the rest itself (docs/operations.md, "When
hosts are saturated"), so that this limit only ever meets clients that come
straight to a host.

The probes are never refused, and never wait behind requests: /healthz and
/readyz are answered on the event loop by the lean handler (their checks do not
queue for a request thread), and /metrics, which does need one, is exempt from
the limit: a saturated process must still be seen as alive, and be measured.
WebSockets are not counted: a socket, once open, is not a request in progress.
"""

import json

from detections.operations import metrics

# Answered on the event loop and never refused (detections/operations/health.py).
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
# Never refused, but served like any other request.
UNLIMITED_PATHS = PROBE_PATHS | {"/metrics"}
# Long enough for a burst to pass, short enough that a camera is not held back
# long once a process has room again.
OVERLOADED_RETRY_AFTER_SECONDS = 1

_OVERLOADED_BODY = json.dumps(
    {
        "error": "overloaded",
        "detail": "The server is answering as many requests as it takes at once; nothing was stored. "
        "Retry after the seconds Retry-After gives.",
    },
    separators=(",", ":"),
).encode()
_OVERLOADED_START = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
        (b"retry-after", str(OVERLOADED_RETRY_AFTER_SECONDS).encode()),
    ],
}
_OVERLOADED_BODY_MESSAGE = {"type": "http.response.body", "body": _OVERLOADED_BODY}


class ProbeRouter:
    """ASGI middleware for the "http" protocol: the probes to `probes`, on the
    event loop and outside the limit; every other request to `requests`."""

    def __init__(self, probes, requests):
        self.probes, self.requests = probes, requests

    async def __call__(self, scope, receive, send):
        chosen = self.probes if scope["path"] in PROBE_PATHS else self.requests
        return await chosen(scope, receive, send)


class InFlightLimit:
    """ASGI middleware for the "http" protocol: at most `limit` requests in
    progress; the next is answered 503 overloaded at once."""

    def __init__(self, application, limit: int):
        if limit < 1:
            raise ValueError("HTTP_MAX_IN_FLIGHT must be at least 1")
        self.application = application
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["path"] in UNLIMITED_PATHS:
            return await self.application(scope, receive, send)
        if self.in_flight >= self.limit:
            metrics.REQUESTS_REFUSED.labels(reason="overloaded").inc()
            # The body is left unread: the server discards it and keeps the connection.
            await send(_OVERLOADED_START)
            await send(_OVERLOADED_BODY_MESSAGE)
            return
        self.in_flight += 1
        metrics.REQUESTS_IN_FLIGHT.inc()
        try:
            return await self.application(scope, receive, send)
        finally:
            self.in_flight -= 1
            metrics.REQUESTS_IN_FLIGHT.dec()
