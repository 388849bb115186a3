"""Request bodies: bounded and checked before they are read, and read whole however they came.

Django's ASGI handler reads a request's whole body into a temporary file (on
disk past FILE_UPLOAD_MAX_MEMORY_SIZE) before any middleware, view,
authentication or size check runs; DATA_UPLOAD_MAX_MEMORY_SIZE is checked
after that, and only against the Content-Length a client announced. Left
alone, an anonymous client makes the server write a body of any size to disk
before it is answered 401 or 413. `BodyGate` stands in front of every HTTP request
instead, before any of its body is read:

- an anonymous POST, PUT, PATCH or DELETE to /api/ is answered 401 at once:
  every write there needs a device key, a token or a session;
- a Content-Length over MAX_REQUEST_BYTES (DATA_UPLOAD_MAX_MEMORY_SIZE) is
  answered 413 at once;
- a body in a charset it cannot be read in is answered 415 at once (see
  `readable_charset`);
- a body without a Content-Length (chunked) is counted as it arrives, and
  answered 413 as soon as it passes the limit: the handler is told the client
  went away, so what it spooled so far is dropped and nothing more is.

Each answer closes the connection, so the server stops reading the body too.

`RequestHandler` is Django's handler for the rest. A chunked body comes with no
Content-Length, which Django's request, and DRF (which reads no body without
one), take for an empty body; once the body is read its length is known, and
the handler tells the request.
"""

import functools
import json
import os

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http.cookie import parse_cookie
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import NotAuthenticated

# Methods that change something: never open to anonymous callers on /api/.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The scheme a 401 names, as DRF's own 401s do (the first authentication class's).
AUTHENTICATE_SCHEME = b"Token"


class BodyGate:
    """ASGI middleware for the "http" protocol: refuses what must not be read
    before reading it, and stops a body at MAX_REQUEST_BYTES."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if is_anonymous_write(scope):
            return await send_error(
                send,
                401,
                "not_authenticated",
                str(NotAuthenticated.default_detail),
                [(b"www-authenticate", AUTHENTICATE_SCHEME)],
            )
        announced = content_length(scope)
        if announced is not None and announced > limit:
            return await send_error(send, *too_large(limit))
        charset = body_charset(scope, announced)
        if charset is not None and not readable_charset(charset):
            return await send_error(
                send,
                415,
                "unsupported_media_type",
                f"The body's charset '{charset}' is not one this server reads; send UTF-8.",
            )

        received = 0
        refused = response_started = False

        async def bounded_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not response_started:
                        await send_error(send, *too_large(limit))
                    # Django's handler drops what it spooled and answers nothing.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.application(scope, bounded_receive, guarded_send)


def is_anonymous_write(scope) -> bool:
    """A write to the API with no credential of any kind: no Authorization
    header, no session cookie. (A credential that turns out to be bad is
    refused by the view, after a body held to the limit.)"""
    if scope["method"] not in WRITE_METHODS or not scope["path"].startswith("/api/"):
        return False
    for name, value in scope["headers"]:
        if name == b"authorization":
            return False
        if name == b"cookie" and settings.SESSION_COOKIE_NAME in parse_cookie(value.decode("latin-1")):
            return False
    return True


def content_length(scope) -> int | None:
    """The Content-Length announced, if any (the server has checked that it is one number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def body_charset(scope, announced: int | None) -> str | None:
    """The charset the Content-Type names for a body the request carries (one
    with a length other than 0, or chunked), parsed as Django parses it."""
    if announced == 0:
        return None
    content_type = chunked = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
    if content_type is None or (announced is None and not chunked):
        return None
    return parse_header_parameters(content_type)[1].get("charset")


# Every byte value. A body's charset must be a text encoding that decodes any
# bytes, replacing what it cannot map, as Django decodes forms: Python also
# knows bytes-to-bytes codecs (base64, hex, zlib, rot13 ...) that decode no
# text, and a few (idna, punycode, undefined) that fail on most bytes whatever
# the error handler.
EVERY_BYTE = bytes(range(256))


@functools.lru_cache(maxsize=128)
def readable_charset(charset: str) -> bool:
    try:
        EVERY_BYTE.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown, not a text encoding, or failing (UnicodeError)
        return False
    return True


def too_large(limit: int) -> tuple:
    return 413, "request_too_large", f"The request body is larger than {limit} bytes (MAX_REQUEST_BYTES)."


def error_body(code: str, detail: str) -> bytes:
    return json.dumps({"error": code, "detail": detail}).encode()


async def send_error(send, status: int, code: str, detail: str, extra_headers=()):
    """A JSON error answered before the body was read, on a connection then closed."""
    body = error_body(code, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The body was not read: the connection cannot carry another request.
                (b"connection", b"close"),
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestHandler(ASGIHandler):
    """Django's ASGI handler; a request whose body came without a Content-Length
    is given the length of what was read."""

    def create_request(self, scope, body_file):
        if not any(name == b"content-length" for name, _ in scope["headers"]):
            length = body_file.seek(0, os.SEEK_END)
            body_file.seek(0)
            if length:
                scope = {**scope, "headers": [*scope["headers"], (b"content-length", str(length).encode())]}
        return super().create_request(scope, body_file)
