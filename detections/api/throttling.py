"""Per-device request rate, counted in Redis when one is configured (REDIS_URL,
or a primary found through Sentinel), so that every server process counts
against the same budget (in this process's memory otherwise, which is all a
single-process demo needs).

The limit fails open: if the cache is down or slow, requests are let through
(and a warning logged) rather than refused or held, because losing detections
is worse than a camera posting too fast for a while.
"""

import functools
import logging
import math
import time

import redis
from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

from detections.core.access import Device

logger = logging.getLogger(__name__)


def parse_rate(rate: str) -> tuple[int, int]:
    """'50/s' -> (50, 1); also /m (minute) and /h (hour)."""
    count, _, unit = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600}[unit.strip().lower()[:1]]
    return int(count), seconds


class DeviceRateThrottle(BaseThrottle):
    """A fixed window per device key: at most DEVICE_RATE_LIMIT requests."""

    def allow_request(self, request, view):
        if not isinstance(request.user, Device):
            return True
        limit, window = parse_rate(settings.DEVICE_RATE_LIMIT)
        now = time.time()
        window_start = math.floor(now / window) * window
        key = f"rate:device:{request.user.key_prefix}:{window_start}"
        self.retry_after = max(1, math.ceil(window_start + window - now))
        try:
            return self._count(key, window) <= limit
        except Exception as exc:  # the cache is unreachable or too slow: fail open
            logger.warning("rate limit not checked, the cache failed (%s: %s)", type(exc).__name__, exc)
            return True

    @staticmethod
    def _count(key: str, window: int) -> int:
        """Count one request in the window `key`; the count so far."""
        client = _redis_client()
        if client is None:
            return _count_in_memory(key, window)
        # One round trip: count, and start the window's clock on the first request.
        pipeline = client.pipeline(transaction=False)
        pipeline.incr(key)
        pipeline.expire(key, window + 1, nx=True)
        count, _ = pipeline.execute()
        return count

    def wait(self):
        return self.retry_after


@functools.cache
def _redis_client() -> redis.Redis | None:
    """One client (one connection pool) per process, shared by every request thread.

    Not Django's cache: its connection objects are per request under ASGI, so
    each request would open, and greet, a new Redis connection.
    """
    if settings.REDIS is None:
        return None
    # A slow or dead Redis (or Sentinel) must not hold a request longer than
    # this per step (the limit then fails open).
    return settings.REDIS.client(timeout=0.25)


def _count_in_memory(key: str, window: int) -> int:
    memory = caches["default"]  # LocMemCache when there is no Redis
    memory.add(key, 0, timeout=window + 1)
    try:
        return memory.incr(key)
    except ValueError:  # expired between add and incr: a new window
        memory.add(key, 1, timeout=window + 1)
        return 1
