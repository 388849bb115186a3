"""/api/schema/ and /api/docs/: the OpenAPI schema and its interactive docs
(a module of their own: the schema generator's settings import
detections/api/schema.py, which must not import the views that read them)."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class JsonErrors:
    """A view whose answers are not JSON (the schema's YAML, the docs' HTML)
    whose errors are JSON all the same, as every other error under /api/."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400:
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(JsonErrors, SpectacularAPIView):
    """GET /api/schema/: this schema (YAML, or JSON with ?format=json)."""


class DocsView(JsonErrors, SpectacularSwaggerView):
    """/api/docs/: Swagger UI, an HTML page rendered from a template. OPTIONS
    answers what it answers on every API path (the view's name, what it
    renders and parses) in JSON, which that template renderer cannot render."""

    def get_renderers(self):
        if self.request.method == "OPTIONS":
            return [JSONRenderer()]
        return super().get_renderers()
