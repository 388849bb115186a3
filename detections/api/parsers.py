"""A JSON parser that refuses oversized bodies before reading them.

DRF reads the request stream itself, which bypasses Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check on `request.body`; this puts it back.
"""

from django.conf import settings
from rest_framework import exceptions, parsers


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"
    default_detail = "The request body is too large."


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length and length.isdigit() and int(length) > limit:
            raise RequestTooLarge(f"The request body is {length} bytes; the limit is {limit} bytes.")
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
