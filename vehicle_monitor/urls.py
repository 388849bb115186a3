from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from detections import health
from detections import dashboard, views

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    # Any active user may watch the dashboard; the admin's login admits staff only.
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("detections.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
]

if settings.SERVE_MEDIA:
    # Without a proxy in front, the service serves snapshots itself, to viewers only.
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.+)$", views.MediaView.as_view()))

handler400 = "detections.errors.bad_request"
handler404 = "detections.errors.not_found"
handler500 = "detections.errors.server_error"
