"""A body that fails validation, in the words every ingest path answers with:
a machine-readable `error` code, a human `detail` sentence, and `field` when one
field is at fault (protocol.md). The API's error answers and batch items, and
the MQTT bridge's results, all say it this way.
"""

# Validation codes that mean "too large" rather than "wrong": answered with 413.
TOO_LARGE_CODES = {"image_too_large", "batch_too_large"}


def validation_body(detail) -> dict:
    """The first problem as error/detail/field; every problem under `errors`."""
    field, first = _first_error(detail)
    body = {"error": getattr(first, "code", None) or "invalid", "detail": str(first)}
    if field and field != "non_field_errors":
        body["field"] = field
        if not str(first).startswith(field):
            body["detail"] = f"{field}: {first}"
    body["errors"] = detail
    return body


def _first_error(detail, field=None):
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        name = key if field is None else f"{field}.{key}"
        return _first_error(value, name)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _first_error(first, f"{field}[0]" if field else None)
        return field, first
    return field, detail
