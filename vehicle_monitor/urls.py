from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from detections.api import views as api_views
from detections.api.docs import DocsView, SchemaView
from detections.dashboard import views as dashboard_views
from detections.operations import health

urlpatterns = [
    path("", dashboard_views.dashboard, name="dashboard"),
    path("sites/", dashboard_views.sites_page, name="dashboard-sites"),
    path("routes/", dashboard_views.routes_page, name="dashboard-routes"),
    # Any active user may watch the dashboard; the admin's login admits staff only.
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("detections.api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    # Every page declares the icon, but browsers still ask for /favicon.ico for
    # what is not a page (a JSON answer, a snapshot opened on its own).
    path("favicon.ico", RedirectView.as_view(url=static("detections/favicon.svg"))),
]

if settings.SERVE_MEDIA:
    # Without a proxy in front, the service serves snapshots itself, to viewers only.
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.+)$", api_views.MediaView.as_view()))

handler400 = "detections.api.errors.bad_request"
handler404 = "detections.api.errors.not_found"
handler500 = "detections.api.errors.server_error"
