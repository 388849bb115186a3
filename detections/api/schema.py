"""OpenAPI helpers (drf-spectacular): how the schema names our authentication
schemes (imported by the app config so that the extensions are registered),
the error body every endpoint documents, and the interactive docs page."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import inline_serializer
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

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


class ApiDocsView(SpectacularSwaggerView):
    """/api/docs/: Swagger UI, an HTML page rendered from a template. OPTIONS
    answers what it answers on every API path (the view's name, what it
    renders and parses) in JSON, which that template renderer cannot render."""

    def get_renderers(self):
        if self.request.method == "OPTIONS":
            return [JSONRenderer()]
        return super().get_renderers()
