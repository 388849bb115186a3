"""Every error the API gives is JSON: a machine-readable `error` code, a
human `detail` sentence, and `field` when one field is at fault (protocol.md).

    {"error": "invalid_image", "detail": "vehicle_img is not valid base64", "field": "vehicle_img"}
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from detections.core import storage
from detections.ingest.errors import TOO_LARGE_CODES, validation_body

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying when the database is unreachable.
DATABASE_RETRY_AFTER = 5


def json_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return error_response(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "request_too_large", str(exc))
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is down, restarting or failing over: nothing was stored.
        logger.warning("database unavailable: %s", exc)
        response = error_response(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "database_unavailable",
            "The database is unavailable; nothing was stored. Retry later.",
        )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
    if storage.unavailable(exc):
        # The object store is down: ingest wrote no file, so it stored no row either.
        logger.warning("object store unavailable: %s", exc)
        safe = context["request"].method in ("GET", "HEAD", "OPTIONS")
        response = error_response(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "The object store that keeps the snapshots is unavailable; "
            + ("the file cannot be read now" if safe else "nothing was stored")
            + ". Retry later.",
        )
        response["Retry-After"] = str(storage.STORAGE_RETRY_AFTER)
        return response
    if isinstance(exc, DatabaseError):
        return None  # a bug, not bad input: let it surface as a 500 and be logged
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = validation_body(exc.detail)
        if response.data["error"] in TOO_LARGE_CODES:
            response.status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        elif _all_codes(exc.get_codes()) == {"unique"}:
            # Only a name another record has: the body is right, the state is in the way.
            response.status_code = status.HTTP_409_CONFLICT
    else:
        response.data = {"error": _code_of(exc), "detail": _text(exc.detail)}
    return response


def error_response(status_code: int, code: str, detail: str, field: str | None = None) -> Response:
    body = {"error": code, "detail": detail}
    if field:
        body["field"] = field
    return Response(body, status=status_code)


def _all_codes(codes) -> set[str]:
    if isinstance(codes, dict):
        return set().union(*map(_all_codes, codes.values())) if codes else set()
    if isinstance(codes, list):
        return set().union(*map(_all_codes, codes)) if codes else set()
    return {codes}


def _code_of(exc) -> str:
    code = getattr(exc, "default_code", None) or "error"
    return {"parse_error": "malformed_request"}.get(code, code)


def _text(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_text(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_text(item) for item in detail)
    return str(detail)


# --- Django-level handlers, for what never reaches a DRF view ----------------------


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": "not_found", "detail": f"No such endpoint: {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    if _wants_json(request):
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse({"error": "request_too_large", "detail": str(exception)}, status=413)
        return JsonResponse({"error": "bad_request", "detail": "The request could not be understood."}, status=400)
    return defaults.bad_request(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(
            {"error": "server_error", "detail": "Internal server error; it has been logged."}, status=500
        )
    return defaults.server_error(request)
