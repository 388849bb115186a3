"""How the OpenAPI schema (drf-spectacular) names our authentication schemes.
Imported by the app config so that the extensions are registered."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class DeviceKeyScheme(OpenApiAuthenticationExtension):
    target_class = "detections.auth.DeviceKeyAuthentication"
    name = "deviceKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An edge unit's device key: `Authorization: Token vmk_...` (or `Bearer vmk_...`).",
        }


class ViewerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "detections.auth.ViewerTokenAuthentication"
    name = "viewerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A viewer's user token: `Authorization: Token <40 hex digits>` (or `Bearer ...`).",
        }
