"""Keep credentials out of access logs.

Sockets may carry a viewer token as `?token=`, and a client may wrongly put
one in any URL. daphne and uvicorn log full request URIs with their query
strings, so every logged URL passes through `redact_url` first.
"""

import logging
import re

SECRET_PARAMETERS = ("token", "access_token", "key", "api_key")
_SECRET_IN_QUERY = re.compile(r"([?&](?:%s)=)[^&#\s\"]*" % "|".join(SECRET_PARAMETERS), re.IGNORECASE)
REDACTED = "[redacted]"


def redact_url(url: str) -> str:
    return _SECRET_IN_QUERY.sub(r"\1" + REDACTED, url)


def install_daphne_redaction():
    """daphne writes its access log itself, not through logging; wrap the one
    method every entry passes through. asgi.py calls this, and daphne imports
    the application before it creates its access logger."""
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:
        return
    if getattr(AccessLogGenerator.__call__, "redacts", False):
        return
    original = AccessLogGenerator.__call__

    def redacting_call(self, protocol, action, details):
        if "path" in details:
            details = {**details, "path": redact_url(str(details["path"]))}
        return original(self, protocol, action, details)

    redacting_call.redacts = True
    AccessLogGenerator.__call__ = redacting_call


class RedactSecretsFilter(logging.Filter):
    """For loggers that format URLs into their records (uvicorn.access, django.request)."""

    def filter(self, record):
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in args)
        record.msg = redact_url(str(record.msg))
        return True
