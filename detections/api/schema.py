"""OpenAPI helpers (drf-spectacular): how the schema names our authentication
schemes (imported by the app config so that the extensions are registered),
the error body every endpoint documents, and `ApiSchema`, which documents on
every operation each error status it can answer.

A view documents its own answers and the statuses particular to it (a 409, a
422); the statuses that follow from what an operation is (it takes a body,
has a path parameter, needs credentials, pages a list) are added here, so that
no operation can forget one.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.validators import UniqueValidator

ERROR_BODY = inline_serializer(
    "Error",
    {
        "error": serializers.CharField(help_text="machine-readable code"),
        "detail": serializers.CharField(help_text="what is wrong, in a sentence"),
        "field": serializers.CharField(required=False, help_text="the field at fault"),
    },
)


class DeviceKeyScheme(OpenApiAuthenticationExtension):
    target_class = "detections.api.authentication.DeviceKeyAuthentication"
    name = "deviceKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An edge unit's device key: `Authorization: Token vmk_...` (or `Bearer vmk_...`).",
        }


class ViewerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "detections.api.authentication.ViewerTokenAuthentication"
    name = "viewerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A viewer's user token: `Authorization: Token <40 hex digits>` (or `Bearer ...`).",
        }


class ClosedCorrectionBody(OpenApiSerializerExtension):
    """A correction's body takes its plate and nothing else (another field is
    a 400 naming it): the schema says so, so that no client sends one."""

    target_class = "detections.api.serializers.DetectionCorrectionSerializer"

    def map_serializer(self, auto_schema, direction):
        return {**super().map_serializer(auto_schema, direction), "additionalProperties": False}


# What each error status means, wherever it is documented.
ERRORS = {
    400: "Bad input: a query parameter, a field of the body, or the request itself "
    "(`error` names the rule, `field` the parameter or field at fault)",
    401: "No credentials, or a bad or revoked key or token",
    403: "Credentials of the wrong kind, or without the permission the operation needs",
    404: "No such record, or no such page (a cursor or page number that is not one of ours)",
    413: "The body is too large (`MAX_REQUEST_BYTES`, or a snapshot's or a batch's limit)",
    409: "A value that must be unique is another record's (`error` is `unique`, `field` names it)",
    415: "A content type the operation does not read",
    429: "Over the device key's rate; `Retry-After` says when to try again",
    503: "The database (or the media store) is unavailable; nothing was stored. `Retry-After` says when to try again",
}


NO_NUL = "^[^\\x00]*$"
# A path parameter routed by `lookup_value_regex = "[0-9]+"`, as the generator writes it.
DIGITS = {"type": "string", "pattern": "^[0-9]+$"}


class ApiSchema(AutoSchema):
    """The schema of an operation, with every error status it can answer and
    string query parameters that must not be empty (the API refuses `?until=`:
    detections/api/queries.py)."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] == "query" and schema.get("type") == "string":
                schema.setdefault("minLength", 1)
                if "enum" not in schema and "format" not in schema:
                    schema.setdefault("pattern", NO_NUL)  # Django's form fields refuse it
            if parameter["in"] == "path" and parameter["schema"] == DIGITS:
                parameter["schema"] = {"type": "integer", "minimum": 0}  # an id, as the route's regex has it
        responses = operation["responses"]
        for code in self._error_statuses(operation):
            if str(code) not in responses:
                responses[str(code)] = {
                    **self._get_response_for_code(ERROR_BODY, str(code)),
                    "description": ERRORS[code],
                }
        return operation

    def _error_statuses(self, operation) -> list[int]:
        permissions = self.view.get_permissions()
        codes = [400]
        if not all(isinstance(permission, AllowAny) for permission in permissions):
            codes += [401, 403]
        if "{" in self.path or (self._is_list_view() and self._get_paginator()):
            codes.append(404)
        if "requestBody" in operation:
            codes += [413, 415]
            if self._has_unique_field():
                codes.append(409)
        if self.view.get_throttles() and any(
            getattr(permission, "admits_devices", False) for permission in permissions
        ):
            codes.append(429)
        return [*codes, 503]

    def _has_unique_field(self) -> bool:
        serializer = self.get_request_serializer()
        fields = getattr(serializer, "fields", {}) if isinstance(serializer, serializers.BaseSerializer) else {}
        return any(
            isinstance(validator, UniqueValidator) for field in fields.values() for validator in field.validators
        )

    def map_parsers(self):
        """The body's media types: the view's `documented_media_types` where it
        reads forms too but documents JSON (a form cannot say null or nest an
        object, so its schema would not be the truth)."""
        return getattr(self.view, "documented_media_types", None) or super().map_parsers()
