"""Where Redis is, and the one place its clients are made.

Redis is either one server (REDIS_URL) or a primary watched by Sentinels
(REDIS_SENTINELS and REDIS_SENTINEL_MASTER). Through Sentinel every new
connection first asks a Sentinel for the current primary, so after a failover
the channel layer and the rate limiter reach the promoted replica by
themselves, with no restart and no configuration change.

settings.py reads the variables and calls `redis_location`; no Django setting
is read here, so settings.py can import this module.
"""

from dataclasses import dataclass

import redis
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

# How long the channel layer waits for one Sentinel to connect or answer. A
# Sentinel answers from memory, so one that takes longer is treated as down and
# the next one is asked.
SENTINEL_TIMEOUT = 0.5


@dataclass(frozen=True)
class RedisLocation:
    url: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    password: str = ""
    sentinel_password: str = ""

    def channel_layer_host(self) -> str | dict:
        """One entry of channels-redis' `hosts` (a URL, or its Sentinel form)."""
        if self.url:
            return self.url
        # No socket timeout on the primary's connections: the layer's receive
        # blocks on Redis for seconds at a time by design.
        return {
            "sentinels": list(self.sentinels),
            "master_name": self.master_name,
            "sentinel_kwargs": self._sentinel_kwargs(AsyncRetry, SENTINEL_TIMEOUT),
            **self._password(),
        }

    def client(self, *, timeout: float) -> redis.Redis:
        """A synchronous client (one connection pool, safe to share between threads)
        whose connects and replies, to a Sentinel or to the primary, each wait at
        most `timeout` seconds."""
        timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if self.url:
            return redis.Redis.from_url(self.url, **timeouts)
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs(Retry, timeout))
        return sentinel.master_for(self.master_name, **timeouts, **self._password())

    def _sentinel_kwargs(self, retry_class, timeout: float) -> dict:
        kwargs = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # A Sentinel that fails is skipped for the next one at once: redis-py's
            # default for a client it builds itself retries it three times with
            # seconds of back-off, longer than any caller here waits.
            "retry": retry_class(NoBackoff(), 0),
        }
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def _password(self) -> dict:
        return {"password": self.password} if self.password else {}


def redis_location(
    *, url: str = "", sentinels: str = "", master_name: str = "", password: str = "", sentinel_password: str = ""
) -> RedisLocation | None:
    """The configured Redis, or None for none (the in-memory layer).

    Raises ImproperlyConfigured, with a sentence saying what to change, for a
    combination that cannot be what was meant.
    """
    if not sentinels:
        for name, value in (
            ("REDIS_SENTINEL_MASTER", master_name),
            ("REDIS_PASSWORD", password),
            ("REDIS_SENTINEL_PASSWORD", sentinel_password),
        ):
            if value:
                raise ImproperlyConfigured(
                    f"{name} is set but REDIS_SENTINELS is not: it applies only to Redis found through Sentinel "
                    "(with REDIS_URL, put the password in the URL: redis://:PASSWORD@HOST:6379/0)."
                )
        return RedisLocation(url=url) if url else None
    if url:
        raise ImproperlyConfigured(
            "REDIS_URL and REDIS_SENTINELS are both set: set REDIS_URL for one Redis server, or REDIS_SENTINELS "
            "and REDIS_SENTINEL_MASTER for a primary found through Sentinel, not both."
        )
    if not master_name:
        raise ImproperlyConfigured(
            "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not: set it to the name the Sentinels "
            "monitor the primary under (their `sentinel monitor NAME ...` line), e.g. mymaster."
        )
    addresses = tuple(_address(entry.strip()) for entry in sentinels.split(",") if entry.strip())
    if not addresses:
        raise ImproperlyConfigured("REDIS_SENTINELS names no Sentinel: give host:port,host:port,...")
    return RedisLocation(
        sentinels=addresses, master_name=master_name, password=password, sentinel_password=sentinel_password
    )


def _address(entry: str) -> tuple[str, int]:
    """'host:port' or '[v6 address]:port' -> (host, port)."""
    host, colon, port = entry.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ImproperlyConfigured(
            f"REDIS_SENTINELS entry {entry!r} is not host:port (e.g. sentinel-1.internal:26379); "
            "separate several with commas."
        )
    return host, int(port)
