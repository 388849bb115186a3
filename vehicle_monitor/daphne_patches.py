"""Three adjustments to daphne, applied when asgi.py is imported (daphne imports
the application before it creates its access logger or takes a request).

1. Its access log goes through `redact_url`: sockets carry `?token=`, and daphne
   writes full request URIs with their query strings (see redaction.py).
2. Twisted must not parse form bodies: Django parses them itself, and Twisted
   answers a malformed multipart body with an empty, non-JSON 400 before the
   application sees it (and parses every upload a second time in memory).
   `parsePOSTFormSubmission` is twisted.web.http.Request's own switch for this.
3. A body is held to MAX_REQUEST_BYTES as it arrives. Twisted writes every body
   to a temporary file before the application sees the request, so the
   application's own limit (request_bodies.BodyGate) would come after the
   disk was filled: a Content-Length over the limit is answered 413 at once, a
   chunked body as soon as it passes the limit, and the connection is closed.
"""

from .redaction import redact_url
from .request_bodies import error_body, too_large


def install():
    try:
        from daphne.access import AccessLogGenerator
        from daphne.http_protocol import WebRequest
    except ImportError:  # served by another ASGI server
        return
    if getattr(AccessLogGenerator, "patched_by_vehicle_monitor", False):
        return

    log_entry = AccessLogGenerator.__call__

    def redacting_log_entry(self, protocol, action, details):
        if "path" in details:
            details = {**details, "path": redact_url(str(details["path"]))}
        return log_entry(self, protocol, action, details)

    request_init = WebRequest.__init__

    def request_init_without_form_parsing(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        request_init(self, *args, **kwargs)

    AccessLogGenerator.__call__ = redacting_log_entry
    WebRequest.__init__ = request_init_without_form_parsing
    bound_bodies(WebRequest)
    AccessLogGenerator.patched_by_vehicle_monitor = True


def bound_bodies(request_class):
    from django.conf import settings

    got_length, handle_content_chunk, process = (
        request_class.gotLength,
        request_class.handleContentChunk,
        request_class.process,
    )

    def refuse(request):
        """Answers 413 and closes, before the application is called; what was
        kept of the body is dropped."""
        request.body_refused = True
        status, code, detail = too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        body = error_body(code, detail)
        request.channel.transport.write(
            b"HTTP/1.1 %d Request Entity Too Large\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, len(body), body)
        )
        request.channel.loseConnection()
        request.content.close()

    def bounded_got_length(self, length):
        self.body_refused, self.body_received = False, 0
        got_length(self, length)
        if length is not None and length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            refuse(self)

    def bounded_handle_content_chunk(self, data):
        if self.body_refused:
            return  # what the client still sends before the connection closes
        self.body_received += len(data)
        if self.body_received > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            refuse(self)
        else:
            handle_content_chunk(self, data)

    def process_unless_refused(self):
        if not getattr(self, "body_refused", False):
            return process(self)

    request_class.gotLength = bounded_got_length
    request_class.handleContentChunk = bounded_handle_content_chunk
    request_class.process = process_unless_refused
