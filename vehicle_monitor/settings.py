"""Settings for vehicle_monitor, read from the environment.

Every default runs with no infrastructure at all (a SQLite file, the in-memory
channel layer, media on local disk), so `make demo` works on a bare machine.
Production sets DATABASE_URL (MySQL/MariaDB) and REDIS_URL; see README.md for
the full table of variables.
"""

import tempfile
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from vehicle_monitor.networks import parse_networks
from vehicle_monitor.redis_clients import redis_location

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# A development key is fine while DEBUG is on; production must bring its own.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false.")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # daphne first: it replaces runserver with an ASGI one that serves the socket too.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "detections.apps.DetectionsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vehicle_monitor.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "vehicle_monitor.asgi.application"

# --- Database -----------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
# MariaDB only: see the init_command below. 0 turns the limit off.
DATABASE_IDLE_TRANSACTION_SECONDS = env.int("DATABASE_IDLE_TRANSACTION_SECONDS", default=5)
if _db["ENGINE"] == "django.db.backends.mysql":
    _db.setdefault("OPTIONS", {}).update(
        {
            # utf8mb4: plates and descriptions may hold any Unicode character.
            "charset": "utf8mb4",
            # Strict mode turns silent truncation into errors (Django check mysql.W002).
            # On MariaDB (/*M! ... */ is run by MariaDB only; MySQL has no such
            # limit), a connection that leaves a transaction idle longer than
            # DATABASE_IDLE_TRANSACTION_SECONDS is closed and its transaction rolled
            # back: every transaction here runs its statements back to back, so an
            # idle one belongs to a process cut off from the network, and its locks
            # (the feed row's among them) would stop every other host's writes.
            # Any transaction, not only writing ones: a SELECT ... FOR UPDATE that
            # has written nothing yet holds its locks too.
            "init_command": (
                f"SET sql_mode='STRICT_TRANS_TABLES'/*M!, idle_transaction_timeout={DATABASE_IDLE_TRANSACTION_SECONDS}*/"
            ),
            "isolation_level": "read committed",
            # An unreachable database host fails a request (503) in seconds instead of
            # holding one of the few request threads for the OS's TCP timeout.
            "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=5),
        }
    )
    _db.setdefault("TEST", {}).update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            # Writers take the lock at BEGIN, so concurrent requests queue instead of
            # failing with "database is locked" when a read lock cannot be upgraded.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so that a server process started by the tests shares it.
    _db.setdefault("TEST", {}).setdefault("NAME", str(Path(tempfile.gettempdir()) / "vehicle_monitor_test.sqlite3"))
# Test runs only: which database the suite creates, so parallel runs do not collide.
if env.str("DATABASE_TEST_NAME", default=""):
    _db.setdefault("TEST", {})["NAME"] = env.str("DATABASE_TEST_NAME")
# Each server process runs requests on HTTP_THREADS long-lived threads
# (vehicle_monitor/http_threads.py), and each thread keeps its connection this
# long, checked before reuse (CONN_HEALTH_CHECKS), so a database restart costs
# a reconnect, not an error. Connections per process: HTTP_THREADS + 2 (the
# group commit's writer, detections/group_commit.py, and the sockets').
HTTP_THREADS = env.int("HTTP_THREADS", default=2)
# HTTP requests a server process has in progress at most; the next is answered
# 503 with Retry-After at once (vehicle_monitor/admission.py). Above what the
# load balancer sends each process (docs/deploy/haproxy.cfg's maxconn), which
# queues the rest itself.
HTTP_MAX_IN_FLIGHT = env.int("HTTP_MAX_IN_FLIGHT", default=64)
_db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
_db["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer ---------------------------------------------------------------

# One Redis server (REDIS_URL), or a primary and its replicas watched by
# Sentinels (REDIS_SENTINELS=host:port,... and REDIS_SENTINEL_MASTER), which
# the channel layer and the rate limiter follow through a failover. A
# contradictory combination stops the process here, saying why.
REDIS_URL = env.str("REDIS_URL", default="")
REDIS = redis_location(
    url=REDIS_URL,
    sentinels=env.str("REDIS_SENTINELS", default=""),
    master_name=env.str("REDIS_SENTINEL_MASTER", default=""),
    # Sentinel only: the primary's and replicas' password, and the Sentinels' own.
    password=env.str("REDIS_PASSWORD", default=""),
    sentinel_password=env.str("REDIS_SENTINEL_PASSWORD", default=""),
)
# The core layer, not RedisPubSubChannelLayer: each process holds one feed
# subscription (detections/broadcast.py), so both carry one copy per process;
# the core layer keeps a message in Redis while the subscriber reconnects, and
# measured no slower (benchmarks/README.md).
if REDIS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS.channel_layer_host()],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="vehicle_monitor"),
                # A burst of detections must not overflow a process's feed channel: the
                # core layer drops messages silently past capacity.
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# How long a publish may wait for the channel layer before it gives up. The row is
# already committed by then; a slow Redis must not hold the request.
EVENT_PUBLISH_TIMEOUT = env.float("EVENT_PUBLISH_TIMEOUT", default=2.0)

# --- Auth, i18n ------------------------------------------------------------------

LOGIN_URL = "login"  # the dashboard (/) sends visitors here
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media --------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    # MEDIA_ROOT on local disk, written with fewer system calls per file (detections/storage.py).
    "default": {"BACKEND": "detections.core.storage.MediaStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The service serves MEDIA_ROOT itself unless a proxy in front does it.
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=True)
# "local": MEDIA_ROOT. "s3": a bucket every process shares (SeaweedFS, MinIO,
# Ceph, AWS), through django-storages with its own setting names; the service
# still serves /media/ itself, streamed from the bucket (docs/operations.md).
MEDIA_STORAGE = env.str("MEDIA_STORAGE", default="local")
if MEDIA_STORAGE == "s3":
    if not SERVE_MEDIA:
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 is served by the service itself: leave SERVE_MEDIA on.")
    STORAGES["default"] = {"BACKEND": "detections.core.storage.S3MediaStorage"}
    AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME")
    AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default=None)  # unset: AWS itself
    AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default=None)
    AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default=None)
    AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default=None)
    # SeaweedFS and MinIO answer at ENDPOINT/BUCKET/KEY, not at BUCKET.ENDPOINT/KEY.
    AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="path")
    AWS_S3_SIGNATURE_VERSION = env.str("AWS_S3_SIGNATURE_VERSION", default="s3v4")
    # Objects keep the bucket's own (private) access: snapshots show plates.
    AWS_DEFAULT_ACL = None
    # Every name is a fresh uuid4: no HEAD request per file to find a free name.
    AWS_S3_FILE_OVERWRITE = True
elif MEDIA_STORAGE != "local":
    raise ImproperlyConfigured(f"MEDIA_STORAGE is {MEDIA_STORAGE!r}: use local or s3.")

# --- Dashboard -------------------------------------------------------------------------

# Tests only: the dashboard page puts window.dashboard (its model, socket and chart)
# on window and lets a test hold its reconnects. Off, a page exposes neither, so no
# script on it can stall a real operator's feed. tests/conftest.py turns it on for
# the server processes the browser tests drive.
DASHBOARD_TEST_HOOKS = env.bool("DASHBOARD_TEST_HOOKS", default=False)

# --- Snapshots ----------------------------------------------------------------------

# Largest decoded snapshot accepted, in bytes, and in pixels (width x height).
# Pillow reads only the header before the pixel check, so a decompression bomb is
# refused before it is decoded.
MAX_IMAGE_BYTES = env.int("MAX_IMAGE_BYTES", default=10 * 1024 * 1024)
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=40_000_000)
# Thumbnails fit in this box; they travel inline in every socket event. 160x120
# is what the JPEG decoder makes at 1/4 scale from a 640x480 snapshot (1/8 from
# 1280x960): most thumbnails need no resize, which halves the cost of checking a
# snapshot, and an event carries ~2.5 KB of thumbnail. The dashboard shows them
# 96 px wide.
THUMBNAIL_MAX_SIZE = (160, 120)
THUMBNAIL_QUALITY = 70
# Largest request body: a batch of small snapshots, or one large one as base64
# (4/3 of its size). Each snapshot is still held to MAX_IMAGE_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "MAX_REQUEST_BYTES", default=max(32 * 1024 * 1024, MAX_IMAGE_BYTES * 4 // 3 + 65536)
)
# Most detections in one POST /api/detections/batch/.
BATCH_MAX_ITEMS = env.int("BATCH_MAX_ITEMS", default=500)
# Group commit (detections/group_commit.py): how long an idle writer waits for
# more single POSTs to share a transaction (0: each POST commits alone), and the
# most detections in one group.
INGEST_GROUP_LINGER_MS = env.float("INGEST_GROUP_LINGER_MS", default=2.0)
INGEST_GROUP_MAX = BATCH_MAX_ITEMS
# Detection times before this year, or this far in the future, are refused as a
# camera with a broken clock.
DETECTION_TIME_MIN_YEAR = 2000
DETECTION_TIME_MAX_FUTURE_SECONDS = env.int("DETECTION_TIME_MAX_FUTURE_SECONDS", default=24 * 3600)

# --- Retention -----------------------------------------------------------------------

# `manage.py purge_detections` deletes detections older than this many days (and
# their files); 0 keeps everything forever. Run it from cron (docs/operations.md).
RETENTION_DAYS = env.int("RETENTION_DAYS", default=0)

# Alerts are kept this many days, delivered webhook messages this many (failed
# ones until resent or their endpoint is deleted); purged with the detections.
ALERT_RETENTION_DAYS = env.int("ALERT_RETENTION_DAYS", default=365)
WEBHOOK_MESSAGE_RETENTION_DAYS = env.int("WEBHOOK_MESSAGE_RETENTION_DAYS", default=30)
# Journeys, and the plate reads the journey engine keeps (the matrix's
# transitions), are kept this many days, on their own: purging detections
# does not derive journeys again. 0 keeps them forever.
JOURNEY_RETENTION_DAYS = env.int("JOURNEY_RETENTION_DAYS", default=365)
# Visits that began more than this many days ago, and are no longer open, are
# purged with the detections (0: kept forever); purging detections keeps them.
VISIT_RETENTION_DAYS = env.int("VISIT_RETENTION_DAYS", default=365)

# --- Alerts and webhooks ----------------------------------------------------------------

# How often a process looks for edits to watch-lists and rules.
ALERT_CONFIG_CHECK_SECONDS = env.float("ALERT_CONFIG_CHECK_SECONDS", default=0.5)
# The start of every absolute URL in a webhook message (image_url, ...).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8000").rstrip("/")
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Seconds before each retry; the last repeats until WEBHOOK_RETRY_FOR_SECONDS
# have passed since the first attempt. Each wait is spread by up to 10% jitter.
WEBHOOK_RETRY_SCHEDULE = [
    float(step)
    for step in env.list("WEBHOOK_RETRY_SCHEDULE", default=["5", "30", "120", "600", "1800", "3600", "7200"])
]
WEBHOOK_RETRY_FOR_SECONDS = env.float("WEBHOOK_RETRY_FOR_SECONDS", default=259200.0)
# Networks a webhook may point into although they are loopback, private or
# link-local (a gate controller on the site's LAN): CIDR, comma-separated.
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
# Messages one worker sends to one endpoint at the same time; every endpoint has its own.
WEBHOOK_CONCURRENCY_PER_ENDPOINT = env.int("WEBHOOK_CONCURRENCY_PER_ENDPOINT", default=4)
# How often an idle delivery worker looks for due messages: a message waits at
# most this long before its first attempt (a busy worker claims again at once).
WEBHOOK_POLL_SECONDS = env.float("WEBHOOK_POLL_SECONDS", default=0.1)
# Fernet keys (comma-separated, newest first) that encrypt webhook secrets at
# rest: the first encrypts, every one decrypts, so a key is rotated by putting
# a new one first and running `manage.py rotate_webhook_secrets_key`. Empty: a
# key derived from DJANGO_SECRET_KEY.
WEBHOOK_SECRET_KEYS = env.list("WEBHOOK_SECRET_KEYS", default=[])

# --- Journeys ------------------------------------------------------------------------

# How often an idle journey engine looks at the log and for edited routes (a
# commit wakes it at once when the channel layer reaches across processes).
JOURNEY_POLL_SECONDS = env.float("JOURNEY_POLL_SECONDS", default=1.0)
# --- MQTT (docs/mqtt.md) ----------------------------------------------------------------

# The broker the bridge (`manage.py mqtt_bridge`) connects to: mqtt://USER:PASSWORD@HOST:1883,
# mqtts:// for TLS. Empty: no bridge, and no process keeps events for one.
MQTT_URL = env.str("MQTT_URL", default="")
MQTT_TOPIC_PREFIX = env.str("MQTT_TOPIC_PREFIX", default="vehicle_monitor").strip("/")
MQTT_DISCOVERY_PREFIX = env.str("MQTT_DISCOVERY_PREFIX", default="homeassistant").strip("/")
# The event types published: detection and deletion by default; alert,
# detection_updated, visit, site and journey only when listed, since the broker's
# read ACL then decides who sees them.
MQTT_EVENTS = env.list("MQTT_EVENTS", default=["detection", "deletion"])
# true: units may publish detections to {prefix}/ingest/{camera}.
MQTT_INGEST = env.bool("MQTT_INGEST", default=False)
# The bridge's client id: its persistent session (the ingest messages queued
# while it is away) is kept by the broker under this name.
MQTT_CLIENT_ID = env.str("MQTT_CLIENT_ID", default="vehicle_monitor_bridge")
# Reconnect back-off: from the first to the longest wait, doubling.
MQTT_RECONNECT_MIN_SECONDS = env.int("MQTT_RECONNECT_MIN_SECONDS", default=1)
MQTT_RECONNECT_MAX_SECONDS = env.int("MQTT_RECONNECT_MAX_SECONDS", default=60)
# How often an idle bridge looks at the event log and the cameras (a commit wakes it
# at once when REDIS_URL or REDIS_SENTINELS is set).
MQTT_POLL_SECONDS = env.float("MQTT_POLL_SECONDS", default=0.5)
# Tests only: the bridge stores ingested detections but never acknowledges their
# messages, so a test can kill it between the two.
MQTT_TEST_HOLD_ACKS = env.bool("MQTT_TEST_HOLD_ACKS", default=False)

# --- REST framework ------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "detections.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "detections.api.pagination.DetectionCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "detections.api.errors.json_exception_handler",
    # ASCII JSON (\u escapes): a lone surrogate echoed back in an error message
    # cannot be encoded as UTF-8, and must not turn a 400 into a 500.
    "UNICODE_JSON": False,
    # The first class names the scheme in 401 answers (WWW-Authenticate: Token).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "detections.api.authentication.DeviceKeyAuthentication",
        "detections.api.authentication.ViewerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Each view names who may use it; anything that forgets is read-only for viewers.
    "DEFAULT_PERMISSION_CLASSES": ["detections.api.permissions.CanView"],
    "DEFAULT_THROTTLE_CLASSES": ["detections.api.throttling.DeviceRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "detections.api.schema.ApiSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "vehicle_monitor API",
    # The wire contract, then the socket in full: both documented in one place.
    "DESCRIPTION": "\n\n".join(
        (BASE_DIR / "docs" / name).read_text(encoding="utf-8") for name in ("protocol.md", "websocket.md")
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Interactive docs from local files: the product must work on an air-gapped site.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the webhook event types, which an endpoint's `events` and a
    # message's `event_type` both use.
    "ENUM_NAME_OVERRIDES": {"WebhookEventEnum": "detections.models.WebhookEvent"},
}

# --- Who may do what, and how much -------------------------------------------------------

# Anyone may read the feed, the list and the stats (never write or delete).
PUBLIC_FEED = env.bool("PUBLIC_FEED", default=False)
# How long a process trusts a device key it has checked before it looks again:
# a key revoked by staff is refused everywhere within this many seconds.
DEVICE_KEY_CACHE_SECONDS = env.float("DEVICE_KEY_CACHE_SECONDS", default=5.0)
# Requests per device key: N/s, N/m or N/h, counted across processes in the cache.
DEVICE_RATE_LIMIT = env.str("DEVICE_RATE_LIMIT", default="50/s")
# Browser origins whose pages may open the socket beyond ALLOWED_HOSTS' own, e.g.
# "null" for a page opened from a file. Such a socket is anonymous unless it
# brings a viewer token (its session cookie is ignored), so with PUBLIC_FEED off
# it needs a token; with it on, anyone's page on that origin reads the feed.
SOCKET_ALLOWED_ORIGINS = env.list("SOCKET_ALLOWED_ORIGINS", default=[])
# Client -> server socket messages: largest size, and how many a minute before
# the socket is closed as a flood.
SOCKET_MAX_MESSAGE_BYTES = env.int("SOCKET_MAX_MESSAGE_BYTES", default=4096)
SOCKET_MAX_MESSAGES_PER_MINUTE = env.int("SOCKET_MAX_MESSAGES_PER_MINUTE", default=120)

# The rate limit counts in Redis when one is configured, through a client of
# its own (detections/api/throttling.py); Django's cache is this process's memory.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Production hardening (all on when DJANGO_DEBUG=false) ------------------------------

# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=not DEBUG)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
# Probes and scrapers talk plain HTTP to each process, without the proxy's
# X-Forwarded-Proto: answer them instead of redirecting to https.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# /metrics names the cameras and the alert rules: it is served to a scraper
# that sends `Authorization: Bearer <METRICS_TOKEN>` or comes from one of
# METRICS_ALLOWED_NETWORKS (CIDRs, comma-separated). With neither set it is a
# 404, unless DEBUG is on.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = parse_networks("METRICS_ALLOWED_NETWORKS", env.list("METRICS_ALLOWED_NETWORKS", default=[]))

# --- Logging -------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # No token reaches the log, whichever server or logger formats the URL.
    "filters": {"redact_secrets": {"()": "vehicle_monitor.redaction.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # uvicorn sets up these loggers with handlers of its own, which log request
    # URLs as they came; this takes them over (Django configures logging after
    # uvicorn does), so their records pass the redacting filter too.
    "loggers": {
        name: {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO"), "propagate": False}
        for name in ("uvicorn.access", "uvicorn.error")
    },
}
