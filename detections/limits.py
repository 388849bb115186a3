"""Per-device request rate, counted in the shared cache so that every server
process counts against the same budget (Redis when REDIS_URL is set).

The limit fails open: if the cache is down or slow, requests are let through
(and a warning logged) rather than refused or held, because losing detections
is worse than a camera posting too fast for a while.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from .auth import Device

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
        cache.add(key, 0, timeout=window + 1)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.add(key, 1, timeout=window + 1)
            return 1

    def wait(self):
        return self.retry_after
