"""The live dashboard at `/`: an operator's view of the feed.

The page is rendered with a snapshot of the state (counts, the hourly series,
the latest detections) and the `seq` of the last event that snapshot includes.
The browser then opens the socket with `?after=<that seq>`, so every event
after the snapshot is applied exactly once, whatever happened in between.

`GET /?format=json` answers the same snapshot as JSON: the page reloads it when
the filter changes and when the socket says `reset`; its seq lines the reload up
with the event stream (an event near the reload is counted once, not twice or
not at all).
"""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from detections.api.serializers import DetectionSerializer
from detections.core import counters, stats
from detections.core.access import may_view_journeys, may_view_visits
from detections.core.formats import format_time
from detections.models import Camera, VehicleType

logger = logging.getLogger(__name__)

# How many detections the feed shows (and the snapshot carries).
FEED_SIZE = 40
# Attempts at a snapshot that no commit interleaved with (see `snapshot`).
SNAPSHOT_ATTEMPTS = 10
CAMERA_NAME_MAX_LENGTH = Camera._meta.get_field("name").max_length


def filter_from(params) -> dict:
    """The camera and vehicle type filter of a request; anything invalid means "all"."""
    camera = params.get("camera", "").strip()
    vehicle_type = params.get("vehicle_type", "").strip().lower()
    return {
        "camera": camera if camera and len(camera) <= CAMERA_NAME_MAX_LENGTH and camera.isprintable() else None,
        "vehicle_type": vehicle_type if vehicle_type in VehicleType.values else None,
    }


def snapshot(camera: str | None = None, vehicle_type: str | None = None) -> dict:
    """Counts, series and latest detections, and the seq they are exact at.

    The database reads at READ COMMITTED: each query sees the commits made
    before it, so the queries below could see different states. Every change
    to the counters moves the feed's seq in the same transaction, so when the
    seq is the same before and after the reads, no commit came in between and
    the reads agree with that seq. A busy feed may need a second try.
    """
    query = stats.StatsQuery(camera=camera, vehicle_type=vehicle_type, bucket="hour", recent=FEED_SIZE)
    for _ in range(SNAPSHOT_ATTEMPTS):
        before = counters.current_position()
        now = timezone.now()
        by_type, by_camera = stats.breakdowns(query)
        series = stats.series(query, now=now)
        recent = DetectionSerializer(stats.recent_logs(query), many=True).data
        after = counters.current_position()
        if after.seq == before.seq:
            break
    else:
        # Still moving: `before` is the safe side. Events after it are replayed,
        # and the few the reads already counted are counted again until a reload.
        logger.warning("dashboard snapshot did not settle in %s attempts", SNAPSHOT_ATTEMPTS)
    return {
        "seq": before.seq,
        "total": before.count,
        "by_vehicle_type": by_type,
        "by_camera": by_camera,
        "series": series,
        "recent": recent,
        "filter": {"camera": camera, "vehicle_type": vehicle_type},
        "generated_at": format_time(now),
    }


@never_cache
def dashboard(request):
    """The page (login required), or with ?format=json the state it starts from."""
    if request.GET.get("format") == "json":
        if not request.user.is_authenticated:
            # A script's request: an answer it can read, not a login page.
            return JsonResponse({"error": "not_authenticated", "detail": "Log in to see the dashboard."}, status=401)
        return JsonResponse(snapshot(**filter_from(request.GET)))
    return page(request)


@login_required
def page(request):
    chosen = filter_from(request.GET)
    state = snapshot(**chosen)
    cameras = list(Camera.objects.order_by("name").values_list("name", flat=True))
    if chosen["camera"] and chosen["camera"] not in cameras:
        cameras.append(chosen["camera"])
    # The socket sends alerts only to these users; the page shows its alert panel only to them.
    can_view_alerts = request.user.has_perm("detections.view_alert")
    # The API refuses a correction to anyone else (CanCorrect); the page offers none.
    can_correct = request.user.has_perm("detections.change_detection")
    config = {
        **page_config(request, reverse("dashboard")),
        "stateUrl": reverse("dashboard"),
        "statsUrl": reverse("stats"),
        "detectionsUrl": reverse("detection-list"),
        "adminChangeUrl": (reverse("admin:detections_detection_change", args=[0]) if request.user.is_staff else None),
        "vehicleTypes": list(VehicleType.values),
        "canViewAlerts": can_view_alerts,
        "canCorrect": can_correct,
    }
    return render(
        request,
        "detections/dashboard.html",
        {
            "state": state,
            "config": config,
            "cameras": cameras,
            "vehicle_types": VehicleType.values,
            "chosen": chosen,
            "can_view_alerts": can_view_alerts,
            "can_correct": can_correct,
            **views_offered(request.user),
        },
    )


def views_offered(user) -> dict:
    """Which of the views the top bar offers (templates/detections/topbar.html):
    a view the user may not open is not shown."""
    return {"can_view_visits": may_view_visits(user), "can_view_journeys": may_view_journeys(user)}


def page_config(request, here: str) -> dict:
    """What every dashboard page's scripts need, whatever the page shows."""
    return {
        "socketPath": "/ws",
        "loginUrl": f"{resolve_url(settings.LOGIN_URL)}?next={here}",
        # window.dashboard and the reconnect hold, for the browser tests only.
        "testHooks": settings.DASHBOARD_TEST_HOOKS,
        # The API's writes with the page's session need it (DRF's SessionAuthentication checks CSRF).
        "csrfToken": get_token(request),
    }


@never_cache
@login_required
def sites_page(request):
    """The sites view: occupancy, open visits and dwell per site, live.

    The page carries the log's seq read before anything else; the browser loads
    the sites' state from the API after it and opens the socket from that seq.
    An event both counted in that state and replayed changes nothing: each
    carries the site's occupancy and the visit whole, so applying it twice is
    applying it once.
    """
    if not may_view_visits(request.user):
        raise PermissionDenied("Sites need the 'view visit' permission.")
    config = {
        **page_config(request, reverse("dashboard-sites")),
        "seq": counters.current_position().seq,
        # The sites' routes take an optional slash, which reverse() leaves out; the script appends ids.
        "sitesUrl": reverse("site-list").rstrip("/") + "/",
        "detectionsUrl": reverse("detection-list"),
    }
    return render(
        request, "detections/sites.html", {"config": config, "section": "sites", **views_offered(request.user)}
    )


@never_cache
@login_required
def routes_page(request):
    """The routes view: per route, the travel time now against the usual, the
    day's travel times and the latest journeys, live; and the
    origin-destination matrix of the cameras and range chosen.

    Like the sites view, the page carries the log's seq read before anything
    else, the browser loads the routes' state from the API after it and opens
    the socket from that seq: a journey event both in that state and replayed
    is known by its id, and applied once.
    """
    if not may_view_journeys(request.user):
        raise PermissionDenied("Routes need the 'view journey' permission.")
    config = {
        **page_config(request, reverse("dashboard-routes")),
        "seq": counters.current_position().seq,
        # The routes' paths take an optional slash, which reverse() leaves out; the script appends ids.
        "routesUrl": reverse("route-list").rstrip("/") + "/",
        "odMatrixUrl": reverse("od-matrix").rstrip("/") + "/",
        "cameras": list(Camera.objects.order_by("name").values_list("name", flat=True)),
    }
    return render(
        request, "detections/routes.html", {"config": config, "section": "routes", **views_offered(request.user)}
    )
