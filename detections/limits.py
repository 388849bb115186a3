"""Per-device request rate, counted in the shared cache so that every server
process counts against the same budget (Redis when REDIS_URL is set)."""

import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from .auth import Device


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
        cache.add(key, 0, timeout=window + 1)
        try:
            hits = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.add(key, 1, timeout=window + 1)
            hits = 1
        self.retry_after = max(1, math.ceil(window_start + window - now))
        return hits <= limit

    def wait(self):
        return self.retry_after
