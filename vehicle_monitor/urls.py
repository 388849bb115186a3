from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from detections import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("detections.urls")),
    path("healthz", views.healthz, name="healthz"),
]

if settings.SERVE_MEDIA:
    # Without a proxy in front, the service serves snapshots itself.
    urlpatterns.append(
        re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})
    )

handler400 = "detections.errors.bad_request"
handler404 = "detections.errors.not_found"
handler500 = "detections.errors.server_error"
