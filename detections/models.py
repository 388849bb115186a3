"""Cameras, their detections, the event log that numbers every published event,
the counters that keep counts and statistics from ever scanning detections;
watch-lists, alert rules and the alerts they raise; webhook endpoints and the
messages to them, which the delivery workers make from the event log; routes
and journeys (detections/journeys/models.py).
"""

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

# Routes and journeys, sites and visits have rooms of their own; their models
# are this app's too.
from detections.journeys.models import Journey, PlateRead, Route  # noqa: F401
from detections.sites.models import Direction, Role, Site, SiteCamera, Visit, VisitState  # noqa: F401

# A camera's last_seen_at and a device key's last_used_at are written at most
# this often, not on every detection.
LAST_SEEN_RESOLUTION = timedelta(seconds=30)


class VehicleType(models.TextChoices):
    CAR = "car"
    TRUCK = "truck"
    BUS = "bus"
    MOTORCYCLE = "motorcycle"
    BICYCLE = "bicycle"
    VAN = "van"
    OTHER = "other"


class Camera(models.Model):
    """A camera source. `name` is what edge units send as `camera`."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


def _snapshot_path(instance, filename):
    return f"snapshots/{instance.detected_at:%Y/%m/%d}/{filename}"


def _thumbnail_path(instance, filename):
    return f"thumbnails/{instance.detected_at:%Y/%m/%d}/{filename}"


class Detection(models.Model):
    """One vehicle seen by one camera at one time.

    (camera, tracking_id, detected_at) is unique: a camera retrying a POST
    cannot store the same detection twice.

    Detections are created and deleted by `detections.core.writes` (the API, the
    group commit, batch ingest, the admin, retention): in one transaction it
    writes the files, the rows, the counters and the event rows, and it sends
    post_save(created=True) and post_delete for every row, bulk statements
    included, with the row's event. The one receiver of each (`feed/signals.py`)
    publishes that event after commit. A row saved or deleted by the ORM
    directly sends the signals without an event; the receiver then has it
    counted and logged first, so the shell's changes reach the sockets too.
    """

    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="detections")
    tracking_id = models.CharField(max_length=100)
    vehicle_type = models.CharField(max_length=16, choices=VehicleType.choices)
    detected_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    image = models.FileField(upload_to=_snapshot_path, blank=True, max_length=200)
    thumbnail = models.FileField(upload_to=_thumbnail_path, blank=True, max_length=200)
    confidence = models.FloatField(null=True, blank=True)
    bbox = models.JSONField(null=True, blank=True, help_text="[x, y, width, height] in pixels")
    plate = models.CharField(max_length=32, blank=True)
    # The plate as matching sees it (`detections.alerts.plates.normalize`): what
    # plate_like searches, by index. It has a database default so that a row
    # loaded by plain SQL (a bulk load) is stored rather than refused; such a
    # row is found by `plate`, not by `plate_like`.
    plate_normalized = models.CharField(max_length=32, blank=True, editable=False, db_default="")
    # "in" or "out" when the unit knows which way the vehicle went: a site's
    # camera of role `both` takes it as the read's direction (`sites.walk`).
    direction = models.CharField(max_length=3, blank=True, choices=Direction.choices, default="", db_default="")

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["camera", "tracking_id", "detected_at"],
                name="detection_unique_camera_track_time",
            )
        ]
        indexes = [
            # The list and recent logs, newest first; the same with a camera or a type.
            # Each ends with id, the list's tie-breaker, so the index gives the order.
            models.Index(fields=["-detected_at", "-id"], name="detection_time_idx"),
            models.Index(fields=["camera", "-detected_at", "-id"], name="detection_camera_time_id_idx"),
            models.Index(fields=["vehicle_type", "-detected_at", "-id"], name="detection_type_time_id_idx"),
            models.Index(fields=["tracking_id"], name="detection_tracking_idx"),
            models.Index(fields=["plate"], name="detection_plate_idx"),
            models.Index(fields=["plate_normalized", "-detected_at", "-id"], name="detection_plate_norm_idx"),
        ]

    def __str__(self):
        return f"{self.vehicle_type} {self.tracking_id} @ {self.camera_id}"


class EventKind(models.TextChoices):
    NEW_DETECTION = "new_detection"
    DELETION = "deletion"
    ALERT = "alert"
    DETECTION_UPDATED = "detection_updated"
    VISIT = "visit"
    SITE = "site"
    JOURNEY = "journey"


class Event(models.Model):
    """One published event, numbered by `seq` in commit order.

    The payload is the socket message without the inline thumbnail (that lives in
    the thumbnail file), so a client that missed events can have them replayed.
    """

    seq = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    detection_id = models.BigIntegerField()
    camera = models.CharField(max_length=100)
    vehicle_type = models.CharField(max_length=16)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # False: no webhook endpoint hears of it (the deletions of a retention purge).
    # A database default too, so that an insert that does not name it (a process
    # of the previous release during an upgrade) is stored as it always was.
    to_webhooks = models.BooleanField(default=True, db_default=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self):
        return f"#{self.seq} {self.kind} {self.detection_id}"


class FeedState(models.Model):
    """The single row that numbers events and counts detections.

    Writers lock it last in their transaction, so `seq` follows commit order and
    `count` is exact without a COUNT(*) over the detections table.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    detection_count = models.BigIntegerField(default=0)

    def __str__(self):
        return f"seq {self.last_seq}, {self.detection_count} detections"


class FollowerCursor(models.Model):
    """How far one follower of the event log has got (`detections.core.followers`):
    every event up to `position` is done. A follower's step locks its row, so
    one process at a time works each follower."""

    name = models.CharField(max_length=32, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.name} at seq {self.position}"


def feed_head() -> int:
    """The last seq taken so far (and committed: the row is read without a lock)."""
    return FeedState.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0


class CameraTypeTotal(models.Model):
    """How many detections a camera holds of one vehicle type: the breakdowns."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="+")
    vehicle_type = models.CharField(max_length=16, choices=VehicleType.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["camera", "vehicle_type"], name="total_unique_camera_type")]

    def __str__(self):
        return f"{self.camera_id} {self.vehicle_type}: {self.count}"


class HourlyCount(models.Model):
    """Detections per camera, vehicle type and UTC hour: the time series."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="+")
    vehicle_type = models.CharField(max_length=16, choices=VehicleType.choices)
    hour = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["camera", "vehicle_type", "hour"], name="hourly_unique_camera_type_hour")
        ]
        # The series read a window of hours across cameras: from this index alone,
        # in hour order, with no lookup of the rows and no sort (counts included).
        indexes = [models.Index(fields=["hour", "vehicle_type", "camera", "count"], name="hourly_series_idx")]

    def __str__(self):
        return f"{self.camera_id} {self.vehicle_type} {self.hour:%Y-%m-%d %H}h: {self.count}"


class IdempotencyKey(models.Model):
    """An `Idempotency-Key` header a client sent with a detection it created.

    The same key again answers with the same detection; the same key with a
    different body is refused. Deleting the detection forgets the key.
    """

    key = models.CharField(max_length=255, unique=True)
    request_hash = models.CharField(max_length=64)
    detection = models.ForeignKey(Detection, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return f"{self.key} -> {self.detection_id}"


class DeviceKey(models.Model):
    """The key an edge unit posts with, bound to the camera(s) it may post for.

    Only a SHA-256 hash is stored: the key itself is shown once, when it is
    issued (`detections.core.device_keys.issue_device_key`). Keys are 256 random bits, so a
    plain hash is as good as a slow one and costs nothing per request.
    """

    label = models.CharField(max_length=100, blank=True, help_text="who or what holds this key")
    prefix = models.CharField(max_length=16, editable=False, help_text="the start of the key, to tell keys apart")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    cameras = models.ManyToManyField(Camera, related_name="device_keys")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… {self.label}".strip()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


# --- Watch-lists and alerts ----------------------------------------------------------------


class MatchMode(models.TextChoices):
    EXACT = "exact"
    FUZZY = "fuzzy"


class Watchlist(models.Model):
    """A list of plates to watch for (a daily stolen-vehicle list, say)."""

    name = models.CharField(max_length=100, unique=True)
    match = models.CharField(max_length=8, choices=MatchMode.choices, default=MatchMode.FUZZY)
    max_edits = models.PositiveSmallIntegerField(
        default=1,
        validators=[MaxValueValidator(2)],
        help_text="fuzzy lists: most edits between a read plate and an entry (0-2)",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_watchlists", "Can manage watch-lists, their plates and alert rules")]

    def __str__(self):
        return self.name


class WatchlistEntry(models.Model):
    """One plate on a watch-list, as staff typed it and as matching sees it."""

    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="entries")
    plate = models.CharField(max_length=32)
    plate_normalized = models.CharField(max_length=32, editable=False)
    note = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="never matches from this time on")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["watchlist", "plate_normalized"]
        verbose_name_plural = "watch-list entries"
        constraints = [
            models.UniqueConstraint(fields=["watchlist", "plate_normalized"], name="watchlist_entry_unique_plate")
        ]

    def __str__(self):
        return f"{self.plate} on {self.watchlist_id}"


class AlertRule(models.Model):
    """What raises an alert: every condition given must hold (an empty one always does)."""

    name = models.CharField(max_length=100)
    watchlist = models.ForeignKey(Watchlist, null=True, blank=True, on_delete=models.PROTECT, related_name="rules")
    cameras = models.JSONField(default=list, blank=True, help_text="camera names; empty: every camera")
    vehicle_types = models.JSONField(default=list, blank=True, help_text="empty: every type")
    min_confidence = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    schedule = models.JSONField(
        null=True,
        blank=True,
        help_text='{"days": [0-6, 0 = Monday], "from": "HH:MM", "to": "HH:MM", "tz": "Area/City"}',
    )
    cooldown_seconds = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name


class AlertCooldown(models.Model):
    """When a rule last raised an alert for one entry (or one camera, for a rule
    without a list): the row a repeat is held back by, locked by every process."""

    # No database constraint on the references that ingest writes from a process's
    # snapshot of the rules (up to a second old): a rule deleted meanwhile must
    # not fail the detection's transaction. Django still cascades or nulls them
    # when it deletes the row.
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    key = models.CharField(max_length=120)
    last_detected_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "key"], name="alert_cooldown_unique_key")]

    def __str__(self):
        return f"{self.rule_id} {self.key} @ {self.last_detected_at}"


class Alert(models.Model):
    """A detection that met a rule. It outlives its detection, its rule and its
    entry: what it says is copied into it when it is raised."""

    seq = models.BigIntegerField(unique=True, help_text="its event's seq in the feed")
    rule = models.ForeignKey(
        AlertRule, null=True, on_delete=models.SET_NULL, related_name="alerts", db_constraint=False
    )
    rule_name = models.CharField(max_length=100)
    watchlist = models.ForeignKey(
        Watchlist, null=True, on_delete=models.SET_NULL, related_name="alerts", db_constraint=False
    )
    watchlist_name = models.CharField(max_length=100, blank=True)
    entry_id = models.BigIntegerField(null=True, blank=True)
    matched_plate = models.CharField(max_length=32, blank=True)
    distance = models.PositiveSmallIntegerField(null=True, blank=True)
    detection_id = models.BigIntegerField()
    camera = models.CharField(max_length=100)
    vehicle_type = models.CharField(max_length=16)
    detected_at = models.DateTimeField()
    detection = models.JSONField(help_text="the detection's new_detection fields when the alert was raised")
    created_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="alert_created_idx"),
            models.Index(fields=["detection_id"], name="alert_detection_idx"),
        ]

    def __str__(self):
        return f"{self.rule_name}: {self.matched_plate or self.camera} (#{self.seq})"


# --- Webhooks -------------------------------------------------------------------------------


class WebhookEvent(models.TextChoices):
    ALERT_TRIGGERED = "alert.triggered"
    DETECTION_CREATED = "detection.created"
    DETECTION_DELETED = "detection.deleted"
    DETECTION_UPDATED = "detection.updated"
    VISIT_OPENED = "visit.opened"
    VISIT_CLOSED = "visit.closed"
    VISIT_CHANGED = "visit.changed"
    VISIT_REMOVED = "visit.removed"
    VISIT_OVERSTAY = "visit.overstay"
    SITE_FULL = "site.full"
    SITE_AVAILABLE = "site.available"
    JOURNEY_COMPLETED = "journey.completed"
    JOURNEY_SPEEDING = "journey.speeding"
    JOURNEY_REMOVED = "journey.removed"


class WebhookEndpoint(models.Model):
    """A receiver of events by HTTP POST. Its signing secret is stored encrypted
    (`detections.webhooks.secrets`)."""

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="event types it receives")
    cameras = models.JSONField(default=list, blank=True, help_text="camera names; empty: every camera")
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, editable=False)
    secret_encrypted = models.TextField(editable=False)
    # The feed's head when the endpoint was saved first (`save`): it receives the
    # events after it, never the history before it. Null for an endpoint made
    # without save() (bulk_create, or a process of the previous release during
    # an upgrade): it receives whatever the fan-out has not reached yet.
    after_seq = models.BigIntegerField(null=True, editable=False, help_text="receives the events with a seq above this")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        permissions = [("manage_webhooks", "Can manage webhook endpoints and resend their messages")]

    def __str__(self):
        return self.url

    def save(self, *args, **kwargs):
        if self._state.adding and self.after_seq is None:
            self.after_seq = feed_head()
        super().save(*args, **kwargs)


class MessageStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookMessage(models.Model):
    """One event for one endpoint, made from the event log by a delivery worker
    (`outbox.fan_out`); the worker sends it until a 2xx or the end of the schedule."""

    # No database constraint: an endpoint deleted while a worker fans out must
    # not fail the fan-out. A message whose endpoint is gone is dropped by the worker.
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="messages", db_constraint=False
    )
    message_id = models.CharField(max_length=40, unique=True, help_text="webhook-id: the same on every attempt")
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    seq = models.BigIntegerField()
    body = models.TextField(help_text="the JSON sent, byte for byte on every attempt")
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker's claim: no other worker sends the message before this time. A
    # worker killed mid-delivery leaves it to expire, and the message is sent again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Its event's time, taken in the write transaction a few ms before the commit,
    # not the fan-out's: the delivery latency counts the time before the fan-out too.
    created_at = models.DateTimeField(default=timezone.now)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_message_due_idx"),
            models.Index(fields=["endpoint", "status", "-id"], name="webhook_message_endpoint_idx"),
            models.Index(fields=["status", "delivered_at"], name="webhook_message_done_idx"),
        ]

    def __str__(self):
        return f"{self.message_id} {self.event_type} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a message: when, what came back, how long it took."""

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="attempts")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    latency_ms = models.FloatField()

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.message_id} @ {self.attempted_at}: {self.status_code or self.error}"


class AlertConfigRevision(models.Model):
    """The single row every change to watch-lists, rules and endpoints bumps:
    each process re-reads them when it sees a new revision (within a second)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    revision = models.BigIntegerField(default=0)

    def __str__(self):
        return f"revision {self.revision}"
