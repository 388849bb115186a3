"""Sites, the roles of their cameras, and the visits derived from their reads.

Defined here, registered as models of the `detections` app by
`detections.models` (one app, one migration history).
"""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone


def validate_tz(value: str):
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"'{value}' is not an IANA time zone (such as Europe/Istanbul).") from None


class Role(models.TextChoices):
    ENTRY = "entry"
    EXIT = "exit"
    BOTH = "both"


class Direction(models.TextChoices):
    IN = "in"
    OUT = "out"


class Site(models.Model):
    """A place with a boundary, watched by cameras at its ways in and out.

    `revision` counts the changes that alter what its visits are (cameras,
    roles, `since`, the walk's parameters); the engine derives the site's
    history again whenever it differs from `derived_revision`.
    """

    name = models.CharField(max_length=100, unique=True)
    tz = models.CharField(max_length=64, default="UTC", validators=[validate_tz])
    capacity = models.PositiveIntegerField(null=True, blank=True)
    repeat_seconds = models.PositiveIntegerField(default=60)
    absent_after_seconds = models.PositiveIntegerField(default=86400)
    max_stay_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_edits = models.PositiveSmallIntegerField(default=1, validators=[MaxValueValidator(2)])
    since = models.DateTimeField(null=True, blank=True, help_text="covers reads at or after this (default: creation)")
    active = models.BooleanField(default=True)
    revision = models.PositiveIntegerField(default=1, editable=False)
    derived_revision = models.PositiveIntegerField(default=0, editable=False)
    # Whether the last capacity event said `full` (so `available` follows it once).
    full = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # The fields whose change makes the site's visits derived again.
    DERIVATION_FIELDS = ("repeat_seconds", "absent_after_seconds", "max_edits", "since", "active")

    class Meta:
        ordering = ["name"]
        permissions = [("manage_sites", "Can manage sites and their cameras' roles")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.since is None:
            self.since = self.created_at
        super().save(*args, **kwargs)


class SiteCamera(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="cameras")
    camera = models.ForeignKey("detections.Camera", on_delete=models.CASCADE, related_name="site_roles")
    role = models.CharField(max_length=8, choices=Role.choices)

    class Meta:
        ordering = ["site", "camera__name"]
        constraints = [models.UniqueConstraint(fields=["site", "camera"], name="site_camera_unique")]

    def __str__(self):
        return f"{self.camera} ({self.role}) at {self.site}"


class VisitState(models.TextChoices):
    OPEN = "open"
    CLOSED = "closed"
    EXIT_MISSED = "exit_missed"
    ENTRY_MISSED = "entry_missed"
    EXPIRED = "expired"


class Visit(models.Model):
    """One vehicle's stay at a site, as the walk (`sites.walk`) makes it.

    Its anchor is the read that makes it: the entry, or the exit of an
    `entry_missed` visit. It keeps its id while it keeps its anchor.
    `ends_at` is where occupancy stops counting it: the exit (`closed`), the
    vehicle's next entry (`exit_missed`), `entered_at + absent_after_seconds`
    (`expired`, and the latest an `open` one can end); null for `entry_missed`,
    which occupancy never counts. The read ids are not references: purging old
    reads keeps the visit and its times.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="visits")
    vehicle = models.CharField(max_length=32, help_text="the plate's normal form")
    plate = models.CharField(max_length=32)
    state = models.CharField(max_length=16, choices=VisitState.choices)
    anchor_detection_id = models.BigIntegerField()
    anchor_at = models.DateTimeField()
    entered_at = models.DateTimeField(null=True, blank=True)
    exited_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True, help_text="exit - entry, when both are known")
    entry_detection_id = models.BigIntegerField(null=True, blank=True)
    exit_detection_id = models.BigIntegerField(null=True, blank=True)
    entry_camera = models.CharField(max_length=100, blank=True)
    exit_camera = models.CharField(max_length=100, blank=True)
    vehicle_type = models.CharField(max_length=16, blank=True)
    overstay = models.BooleanField(default=False)
    # When an open visit passes max_stay_seconds (null: no limit, or not open).
    overstay_at = models.DateTimeField(null=True, blank=True)
    # Its overstay event was raised (never twice for one visit).
    overstay_raised = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-anchor_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["site", "anchor_detection_id"], name="visit_unique_anchor"),
        ]
        indexes = [
            # The list, newest entry first, and a vehicle's timeline.
            models.Index(fields=["site", "-anchor_at", "-id"], name="visit_site_anchor_idx"),
            models.Index(fields=["site", "vehicle", "anchor_at"], name="visit_site_vehicle_idx"),
            # Occupancy: the visits that overlap a window.
            models.Index(fields=["site", "ends_at", "entered_at"], name="visit_site_ends_idx"),
            # Dwell: closed visits by when they ended, with their durations (covering:
            # the count, histogram and percentiles never read the rows).
            models.Index(fields=["site", "state", "exited_at", "duration_seconds"], name="visit_dwell_idx"),
            # The timers: open visits by when they pass their limit or expire.
            models.Index(fields=["state", "overstay_raised", "overstay_at"], name="visit_overstay_due_idx"),
            models.Index(fields=["state", "ends_at"], name="visit_expiry_due_idx"),
        ]

    def __str__(self):
        return f"{self.plate} at {self.site_id} ({self.state})"
