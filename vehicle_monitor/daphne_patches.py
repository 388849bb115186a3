"""Two adjustments to daphne, applied when asgi.py is imported (daphne imports
the application before it creates its access logger or takes a request).

1. Its access log goes through `redact_url`: sockets carry `?token=`, and daphne
   writes full request URIs with their query strings (see redaction.py).
2. Twisted must not parse form bodies: Django parses them itself, and Twisted
   answers a malformed multipart body with an empty, non-JSON 400 before the
   application sees it (and parses every upload a second time in memory).
   `parsePOSTFormSubmission` is twisted.web.http.Request's own switch for this.
"""

from .redaction import redact_url


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
    AccessLogGenerator.patched_by_vehicle_monitor = True
