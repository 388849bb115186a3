from django.urls import re_path
from rest_framework.routers import SimpleRouter

from detections.api import alerts, exports, journeys, sites, views, watchlists, webhooks

router = SimpleRouter()
router.register("detections", views.DetectionViewSet, basename="detection")

urlpatterns = [
    # Legacy paths, with or without a trailing slash: units in the field send either.
    re_path(r"^detect/?$", views.LegacyDetectView.as_view(), name="legacy-detect"),
    re_path(r"^delete/(?P<pk>[0-9]+)/?$", views.LegacyDeleteView.as_view(), name="legacy-delete"),
    re_path(r"^stats/?$", views.StatsView.as_view(), name="stats"),
    # Before the router's routes, so that "export.csv" is never read as an id.
    re_path(r"^detections/export\.csv$", exports.DetectionExportView.as_view(), name="detection-export"),
    re_path(r"^routes/(?P<pk>[0-9]+)/journeys\.csv$", exports.JourneyExportView.as_view(), name="journey-export"),
    re_path(r"^od-matrix\.csv$", exports.OdMatrixExportView.as_view(), name="od-matrix-export"),
    *router.urls,
    *watchlists.urlpatterns,
    *alerts.urlpatterns,
    *webhooks.urlpatterns,
    *sites.urlpatterns,
    *journeys.urlpatterns,
]
