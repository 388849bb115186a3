"""Routes, the journeys paired on them, and the plate reads the journey engine
keeps for itself (`detections.journeys.engine`): one row per read with a
plate, holding its transition from the same vehicle's previous read, so that
the origin-destination matrix and the pairing never scan the detections.

These are models of the one `detections` app (detections/models.py imports
them), in a room of their own.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class QuarterHourSlot(models.Func):
    """The UTC quarter hour (900 s since the epoch, floored) holding a time:
    a journey's `slot`, computed by the database itself so no writer can
    leave it out of step with `ended_at`."""

    output_field = models.BigIntegerField()
    arity = 1
    # MariaDB: exact integer microseconds, floored (DIV would truncate before 1970).
    template = "FLOOR(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', %(expressions)s) / 900000000)"

    def as_sqlite(self, compiler, connection, **extra_context):
        # SQLite's time functions round to the millisecond: cut the stored text to
        # whole seconds first. (SQLite ranks travel times in Python and never
        # reads the slot; it is there to keep the one schema.)
        template = "CAST(strftime('%%%%s', substr(%(expressions)s, 1, 19)) AS INTEGER) / 900"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def positive(value):
    if value is not None and not value > 0:
        raise ValidationError("must be above 0.", code="not_positive")


# The longest journey a route pairs: a week.
MAX_WINDOW_SECONDS = 7 * 86400


class Route(models.Model):
    """An ordered pair of cameras a vehicle passes in turn (protocol.md,
    "Routes and journeys"). Every edit bumps `revision`; the engine derives
    the route's journeys again in the background and records the revision it
    derived in `derived_revision`."""

    name = models.CharField(max_length=100)
    from_camera = models.ForeignKey("detections.Camera", on_delete=models.PROTECT, related_name="+")
    to_camera = models.ForeignKey("detections.Camera", on_delete=models.PROTECT, related_name="+")
    distance_m = models.FloatField(
        null=True, blank=True, validators=[positive], help_text="metres between the two cameras"
    )
    max_seconds = models.PositiveIntegerField(
        default=1800,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_SECONDS)],
        help_text="longest journey paired, in seconds",
    )
    speed_limit_kmh = models.FloatField(
        null=True, blank=True, validators=[positive], help_text="average speeds above it raise `speeding`"
    )
    repeat_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MaxValueValidator(86400)],
        help_text="an end read this close to the vehicle's previous one pairs with nothing",
    )
    since = models.DateTimeField(null=True, blank=True, help_text="reads at or after this time; empty: its creation")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    revision = models.PositiveIntegerField(default=1, editable=False)
    derived_revision = models.PositiveIntegerField(default=0, editable=False)

    # An edit of any of these derives the route's history again.
    DERIVATION_FIELDS = (
        "from_camera",
        "to_camera",
        "distance_m",
        "max_seconds",
        "speed_limit_kmh",
        "repeat_seconds",
        "since",
        "active",
    )

    class Meta:
        ordering = ["name", "id"]
        permissions = [("manage_routes", "Can manage routes")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        # Whatever saves it (the API, the admin, a shell), an edit that changes
        # what pairs is a new revision: the engine derives the history again.
        if not self._state.adding:
            columns = [self._meta.get_field(name).attname for name in self.DERIVATION_FIELDS]
            stored = Route.objects.filter(pk=self.pk).values("revision", *columns).first()
            if stored is not None and any(stored[column] != getattr(self, column) for column in columns):
                self.revision = stored["revision"] + 1
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = {*kwargs["update_fields"], "revision"}
        super().save(*args, **kwargs)

    def clean(self):
        check_ends(self.from_camera_id, self.to_camera_id)

    @property
    def covers_from(self):
        """The first read time the route covers."""
        return self.since or self.created_at


def check_ends(from_camera, to_camera):
    """A route's two cameras differ (ids or Camera rows)."""
    if from_camera is not None and from_camera == to_camera:
        raise ValidationError({"to_camera": "to_camera must differ from from_camera."}, code="same_camera")


class Journey(models.Model):
    """A start read and an end read of a route paired by the contract's rule.
    A journey keeps its id while the same two reads stay paired."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="journeys")
    plate = models.CharField(max_length=32, help_text="the plate as the end camera read it")
    # The end read's normal form, and whether the start read's differs from it
    # (paired by edit distance: never speeding, never evidence).
    vehicle = models.CharField(max_length=32)
    fuzzy = models.BooleanField(default=False)
    from_detection = models.BigIntegerField()
    to_detection = models.BigIntegerField()
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    seconds = models.FloatField()
    speed_kmh = models.FloatField(null=True, blank=True)
    speeding = models.BooleanField(default=False)
    vehicle_type = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The UTC quarter hour of `ended_at`: travel times by 15 minutes (hours, days
    # in zones on the quarter hour) count and rank a bucket from the index below.
    slot = models.GeneratedField(
        expression=QuarterHourSlot("ended_at"), output_field=models.BigIntegerField(), db_persist=True
    )

    class Meta:
        ordering = ["-ended_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["route", "to_detection"], name="journey_unique_end_read")]
        indexes = [
            # The list by end time, and the travel times from the index alone.
            models.Index(fields=["route", "-ended_at", "-id"], name="journey_route_end_idx"),
            models.Index(fields=["route", "ended_at", "seconds"], name="journey_route_times_idx"),
            # Travel times by quarter hours: a bucket's rows in order of seconds; ended_at
            # for a range that starts or ends inside a quarter hour.
            models.Index(fields=["route", "slot", "seconds", "ended_at"], name="journey_route_slot_idx"),
            models.Index(fields=["route", "from_detection"], name="journey_route_start_idx"),
            models.Index(fields=["ended_at"], name="journey_end_idx"),
        ]

    def __str__(self):
        return f"{self.plate} on {self.route_id}: {self.seconds:.0f} s"


class PlateRead(models.Model):
    """One detection with a plate, as the journey engine keeps it, and its
    transition: the camera and the seconds since the same vehicle's previous
    read (exact normal form), unless this read is a `repeat` (within
    TRANSITION_REPEAT_SECONDS of the vehicle's previous read at the same
    camera), which neither starts nor ends a transition."""

    detection_id = models.BigIntegerField(primary_key=True)
    vehicle = models.CharField(max_length=32, help_text="the plate's normal form")
    plate = models.CharField(max_length=32)
    # No database constraint: a camera's detections may be purged and the
    # camera deleted while its reads are still kept for the matrix.
    camera = models.ForeignKey("detections.Camera", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    vehicle_type = models.CharField(max_length=16)
    tracking_id = models.CharField(max_length=100)
    detected_at = models.DateTimeField()
    repeat = models.BooleanField(default=False)
    from_camera = models.ForeignKey(
        "detections.Camera", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    gap_seconds = models.FloatField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["vehicle", "detected_at"], name="plate_read_vehicle_idx"),
            models.Index(fields=["camera", "detected_at"], name="plate_read_camera_idx"),
            # The matrix: a time range, counted by (from, to) from the index alone.
            models.Index(
                fields=["detected_at", "from_camera", "camera", "gap_seconds"], name="plate_read_transition_idx"
            ),
        ]

    def __str__(self):
        return f"{self.vehicle} @ {self.camera_id} {self.detected_at}"
