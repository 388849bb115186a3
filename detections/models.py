"""Cameras, their detections, the event log that numbers every published event,
and the counters that keep counts and statistics from ever scanning detections.
"""

from datetime import timedelta

from django.db import models
from django.utils import timezone

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
        ]

    def __str__(self):
        return f"{self.vehicle_type} {self.tracking_id} @ {self.camera_id}"


class EventKind(models.TextChoices):
    NEW_DETECTION = "new_detection"
    DELETION = "deletion"


class Event(models.Model):
    """One published event, numbered by `seq` in commit order.

    The payload is the socket message without the inline thumbnail (that lives in
    the thumbnail file), so a client that missed events can have them replayed.
    """

    seq = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    detection_id = models.BigIntegerField()
    camera = models.CharField(max_length=100)
    vehicle_type = models.CharField(max_length=16)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

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
