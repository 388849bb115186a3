"""Readiness and metrics, for load balancers and monitoring.

- /healthz: the process is up. Restart it when this fails.
- /readyz: the process can do its work: the database answers a query, the
  channel layer carries a message to this process and back, and (with
  MEDIA_STORAGE=s3) the object store answers a HEAD of the bucket. A load balancer
  stops sending traffic while this answers 503, and resumes when it is 200.
- /metrics: Prometheus metrics (see `metrics`).

/healthz and /readyz need no credentials: they reveal nothing but whether the
process and its dependencies answer. /metrics names the cameras and the alert
rules, so it is served only to what settings name (`metrics_refusal`).
"""

import asyncio
import logging
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from detections.core import storage
from detections.operations import metrics
from vehicle_monitor.networks import address_in

logger = logging.getLogger(__name__)

# Seconds each check may take before it counts as failing: a dependency that
# hangs is as unready as one that refuses.
CHECK_TIMEOUT = 2.0
READY_MESSAGE_TYPE = "readyz.ping"
# The readiness check's query runs on a thread of its own, with its own
# connection: on a thread that requests keep busy it would queue behind them,
# and a host busy at its limit would look unready and be taken out of the
# rotation for being busy (docs/operations.md, "When hosts are saturated").
_probe_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe")


async def healthz(request):
    """The process is up and serving (no dependency is checked here). Async: under
    the server it is answered on the event loop (vehicle_monitor/admission.py)."""
    return JsonResponse({"status": "ok"})


def check_database():
    """One trivial query on this thread's connection."""
    # What a request's start does: drop a connection that failed or outlived CONN_MAX_AGE.
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        # A dead connection must not be reused by the next request or check.
        connection.close()
        raise


async def check_channel_layer():
    """Send a message to a channel of this process and receive it back."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    # The default prefix, as for every channel of this process: channels-redis
    # reads all of a process's channels from one Redis key only when they share
    # it, and a channel of another prefix would wait behind the feed's receive,
    # which holds the layer's receive lock for as long as the feed is quiet.
    channel = await layer.new_channel()
    nonce = uuid.uuid4().hex
    await layer.send(channel, {"type": READY_MESSAGE_TYPE, "nonce": nonce})
    message = await layer.receive(channel)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message")


async def _run(name: str, check) -> dict:
    started = time.monotonic()
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT)
    except TimeoutError:
        outcome = {"status": "failing", "error": f"no answer within {CHECK_TIMEOUT:g} s"}
    except Exception as exc:  # any failure is a reason to be unready, never a 500
        outcome = {"status": "failing", "error": f"{type(exc).__name__}: {_first_line(exc)}"}
    else:
        outcome = {"status": "ok"}
    outcome["seconds"] = round(time.monotonic() - started, 4)
    if outcome["status"] != "ok":
        logger.warning("readiness check %s failing: %s", name, outcome["error"])
    return outcome


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "(no message)"


@never_cache
async def readyz(request):
    """200 {"status": "ready", "checks": {...}} or 503 {"status": "unready", ...}."""
    loop = asyncio.get_running_loop()
    probes = {
        "database": lambda: loop.run_in_executor(_probe_thread, check_database),
        "channel_layer": check_channel_layer,
    }
    store = storage.object_store()
    if store is not None:
        # Off the request threads: a store that hangs must not hold one of them.
        probes["object_store"] = sync_to_async(store.check, thread_sensitive=False)
    outcomes = await asyncio.gather(*(_run(name, probe) for name, probe in probes.items()))
    checks = dict(zip(probes, outcomes, strict=True))
    failing = sorted(name for name, outcome in checks.items() if outcome["status"] != "ok")
    body = {"status": "unready" if failing else "ready", "checks": checks}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)


@never_cache
def metrics_view(request):
    """Prometheus' text format, to a scraper the settings name."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    payload, content_type = metrics.exposition()
    return HttpResponse(payload, content_type=content_type)


def metrics_refusal(request) -> JsonResponse | None:
    """None for a request that may read the metrics: one from
    METRICS_ALLOWED_NETWORKS, or with `Authorization: Bearer <METRICS_TOKEN>`.
    With neither setting, nobody may (a 404), unless DEBUG is on."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        if settings.DEBUG:
            return None
        return JsonResponse(
            {"error": "not_found", "detail": "Metrics are not served: set METRICS_TOKEN or METRICS_ALLOWED_NETWORKS."},
            status=404,
        )
    if networks and address_in(request.META.get("REMOTE_ADDR", ""), networks):
        return None
    if not token:
        return JsonResponse(
            {"error": "permission_denied", "detail": "Metrics are served to METRICS_ALLOWED_NETWORKS only."},
            status=403,
        )
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode("latin-1"), token.encode()):
        return None
    response = JsonResponse(
        {
            "error": "not_authenticated" if not given else "authentication_failed",
            "detail": "Metrics need 'Authorization: Bearer <METRICS_TOKEN>'.",
        },
        status=401,
    )
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
