from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("detections", views.DetectionViewSet, basename="detection")

urlpatterns = [
    # Legacy paths, with or without a trailing slash: units in the field send either.
    re_path(r"^detect/?$", views.LegacyDetectView.as_view(), name="legacy-detect"),
    re_path(r"^delete/(?P<pk>[0-9]+)/?$", views.LegacyDeleteView.as_view(), name="legacy-delete"),
    re_path(r"^stats/?$", views.StatsView.as_view(), name="stats"),
    *router.urls,
]
