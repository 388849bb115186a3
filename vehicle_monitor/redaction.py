"""Keep credentials out of access logs.

Sockets may carry a viewer token as `?token=`, and a client may wrongly put
one in any URL. daphne and uvicorn log full request URIs with their query
strings, so every logged URL passes through `redact_url` first (daphne's
access log: daphne_patches.py; loggers: RedactSecretsFilter in LOGGING).
"""

import logging
import re

SECRET_PARAMETERS = ("token", "access_token", "key", "api_key")
_SECRET_IN_QUERY = re.compile(r"([?&](?:" + "|".join(SECRET_PARAMETERS) + r")=)[^&#\s\"]*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact_url(url: str) -> str:
    return _SECRET_IN_QUERY.sub(r"\1" + REDACTED, url)


class RedactSecretsFilter(logging.Filter):
    """For loggers that format URLs into their records (uvicorn.access, django.request)."""

    def filter(self, record):
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in args)
        record.msg = redact_url(str(record.msg))
        return True
