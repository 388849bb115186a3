"""Staff review detections and delete wrong ones here.

Deleting, one at a time or with the bulk action, goes through the model's
signals like any other path: the files go and every socket gets a `deletion`.
A detection is what a camera saw, and counters follow it: only its plate may
be corrected (with the `change detection` permission), through the same
function as the API's PATCH (`writes.detection_correct`).
The list reads no more than it shows: no facet counts, no full COUNT(*), and
"detections today" of a camera comes from the hourly counters.
"""

from datetime import date, datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db.models import IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from PIL import Image, UnidentifiedImageError

from detections.alerts import plates
from detections.core import counters, writes
from detections.core.device_keys import issue_device_key, new_device_secret, revoke_device_keys, rotate_device_key
from detections.models import Camera, Detection, DeviceKey, HourlyCount
from detections.operations import exports


def show_key_once(request, secret: str, cameras):
    names = ", ".join(sorted(c.name for c in cameras))
    messages.warning(
        request,
        format_html("New device key for {}: <code>{}</code> — copy it now, it is not shown again.", names, secret),
    )


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "active_keys", "last_seen_at", "detections_today", "created_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["last_seen_at", "created_at"]
    actions = ["issue_key"]

    def get_queryset(self, request):
        # From the hourly counters, one subquery for the page: never a COUNT(*)
        # over detections. "Today" starts at the admin's local midnight, taken
        # to the UTC hour that holds it (the counters' resolution).
        since = counters.hour_of(timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0))
        today = (
            HourlyCount.objects.filter(camera=OuterRef("pk"), hour__gte=since)
            .values("camera")
            .annotate(n=Sum("count"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(detections_today_count=Coalesce(Subquery(today, output_field=IntegerField()), Value(0)))
        )

    @admin.display(description="Detections today", ordering="detections_today_count")
    def detections_today(self, camera):
        return camera.detections_today_count

    @admin.display(description="Active keys")
    def active_keys(self, camera):
        return camera.device_keys.filter(revoked_at__isnull=True).count()

    @admin.action(description="Issue a new device key for each selected camera")
    def issue_key(self, request, queryset):
        for camera in queryset:
            _, secret = issue_device_key(cameras=[camera], label=camera.name)
            show_key_once(request, secret, [camera])


@admin.register(DeviceKey)
class DeviceKeyAdmin(admin.ModelAdmin):
    """Keys are issued here (the key is shown once, in a message), revoked and rotated."""

    list_display = ["prefix", "label", "camera_names", "is_active", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "cameras"]
    search_fields = ["label", "prefix", "cameras__name"]
    fields = ["label", "cameras", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    filter_horizontal = ["cameras"]
    actions = ["revoke", "rotate"]

    @admin.display(description="Cameras")
    def camera_names(self, key):
        return ", ".join(camera.name for camera in key.cameras.all())

    @admin.display(boolean=True, description="Active")
    def is_active(self, key):
        return key.is_active

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("cameras")

    def save_model(self, request, obj, form, change):
        if not change:
            request._new_device_key = new_device_secret(obj)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        secret = getattr(request, "_new_device_key", None)
        if secret:
            show_key_once(request, secret, form.instance.cameras.all())

    @admin.action(description="Revoke the selected keys (at once)")
    def revoke(self, request, queryset):
        count = revoke_device_keys(queryset)
        self.message_user(request, f"Revoked {count} key(s).")

    @admin.action(description="Rotate the selected keys (revoke, and issue replacements)")
    def rotate(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            new_key, secret = rotate_device_key(key)
            show_key_once(request, secret, new_key.cameras.all())


class DateRangeFilter(admin.ListFilter):
    """Detections from one date to another, both inclusive, in the admin's time zone."""

    title = "date range"
    template = "admin/detections/date_range_filter.html"
    from_name = "detected_from"
    to_name = "detected_to"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.bounds: dict[str, date] = {}
        for name in (self.from_name, self.to_name):
            if name not in params:
                continue
            value = params.pop(name)[-1].strip()
            self.used_parameters[name] = value
            if not value:
                continue
            try:
                self.bounds[name] = date.fromisoformat(value)
            except ValueError:
                messages.warning(request, f"“{value}” is not a date (YYYY-MM-DD); that bound was ignored.")

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.from_name, self.to_name]

    @staticmethod
    def _midnight(day: date) -> datetime:
        return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())

    def queryset(self, request, queryset):
        if self.from_name in self.bounds:
            queryset = queryset.filter(detected_at__gte=self._midnight(self.bounds[self.from_name]))
        if self.to_name in self.bounds:
            queryset = queryset.filter(detected_at__lt=self._midnight(self.bounds[self.to_name] + timedelta(days=1)))
        return queryset

    def choices(self, changelist):
        ours = self.expected_parameters()
        yield {
            "selected": bool(self.bounds),
            "from_name": self.from_name,
            "to_name": self.to_name,
            "from_value": self.used_parameters.get(self.from_name, ""),
            "to_value": self.used_parameters.get(self.to_name, ""),
            # The other filters, the search and the ordering ride along with the form.
            "hidden": [
                (name, value)
                for name, values in changelist.filter_params.items()
                if name not in ours
                for value in values
            ],
            "clear_query_string": changelist.get_query_string(remove=ours),
        }


class ConfidenceFilter(admin.SimpleListFilter):
    title = "confidence"
    parameter_name = "confidence"
    BUCKETS = {
        "low": ("below 0.5", Q(confidence__lt=0.5)),
        "medium": ("0.5 to 0.8", Q(confidence__gte=0.5, confidence__lt=0.8)),
        "high": ("0.8 and above", Q(confidence__gte=0.8)),
        "none": ("not given", Q(confidence__isnull=True)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.BUCKETS.items()]

    def queryset(self, request, queryset):
        bucket = self.BUCKETS.get(self.value())
        return queryset.filter(bucket[1]) if bucket else queryset


def image_size(name: str) -> tuple[int, int] | None:
    """The pixel size of a stored image, read from its header only."""
    try:
        with default_storage.open(name, "rb") as handle, Image.open(handle) as image:
            return image.size
    except (OSError, ValueError, UnidentifiedImageError):
        return None


def bbox_of(detection) -> tuple[float, float, float, float] | None:
    box = detection.bbox
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, int | float) for v in box):
        return None
    x, y, width, height = (float(v) for v in box)
    return (x, y, width, height) if width > 0 and height > 0 else None


def _number(value: float) -> str:
    return f"{value:g}"


class DetectionCorrectionForm(forms.ModelForm):
    """The change form: its one editable field is the plate, checked as the API checks it."""

    class Meta:
        model = Detection
        fields = ["plate"]

    def clean_plate(self):
        try:
            return writes.checked_plate(self.cleaned_data["plate"])
        except writes.InvalidPlate as problem:
            raise forms.ValidationError(str(problem)) from None


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    form = DetectionCorrectionForm
    list_display = ["thumbnail_preview", "vehicle_type", "camera", "detected_at", "tracking_id", "plate", "confidence"]
    list_display_links = ["thumbnail_preview", "vehicle_type"]
    list_filter = ["camera", "vehicle_type", "detected_at", DateRangeFilter, ConfidenceFilter]
    # Cameras are prefetched (get_queryset), not joined: with a join MySQL sorts
    # every detection for each page instead of reading the newest off an index.
    list_select_related = False
    search_fields = ["tracking_id", "plate"]
    date_hierarchy = "detected_at"
    # No COUNT(*) over the whole table on every list page, nor one per filter choice.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["delete_selected", "export_csv"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("camera")

    def get_search_results(self, request, queryset, search_term):
        # A plate is also found in its normal form, as the list API's plate_like
        # and the watch-lists compare it: "34 abc 123" finds a camera's "34A8C123".
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = plates.normalize(search_term)
        if term:
            found |= queryset.filter(plate_normalized=term)
        return found, may_have_duplicates

    fields = [
        "snapshot",
        "camera",
        "tracking_id",
        "vehicle_type",
        "detected_at",
        "received_at",
        "confidence",
        "bbox",
        "plate",
        "image",
        "thumbnail",
    ]
    # A read's plate is the one thing staff correct (an OCR misread).
    readonly_fields = [name for name in fields if name != "plate"]

    @admin.display(description="Snapshot")
    def thumbnail_preview(self, detection):
        if not detection.thumbnail:
            return "—"
        return format_html('<img src="{}" alt="" style="height:48px;border-radius:3px">', detection.thumbnail.url)

    @admin.display(description="Snapshot")
    def snapshot(self, detection):
        """The full snapshot with its bounding box (templates/admin/detections/snapshot.html)."""
        box = bbox_of(detection)
        context = {
            "url": detection.image.url if detection.image else None,
            "detection_id": detection.pk,
            "box": [_number(value) for value in box] if box else None,
            "size": image_size(detection.image.name) if detection.image and box else None,
        }
        return render_to_string("admin/detections/snapshot.html", context)

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        # Never obj.save(): the correction's event, its alerts and the derived
        # visits come from the one function that corrects a read.
        try:
            writes.detection_correct(detection_id=obj.pk, plate=form.cleaned_data["plate"])
        except Detection.DoesNotExist:
            raise Http404("The detection was deleted meanwhile.") from None

    # --- Actions -----------------------------------------------------------------------

    @admin.action(permissions=["delete"], description="Delete selected detections")
    def delete_selected(self, request, queryset):
        """Django's confirmation page first; once confirmed, delete in batches and
        say how many went and that every client was told."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        _, _, perms_needed, protected = self.get_deleted_objects(queryset, request)
        if protected:
            return django_delete_selected(self, request, queryset)  # explains why not
        if perms_needed:
            raise PermissionDenied
        self.log_deletions(request, queryset)
        deleted = writes.detections_delete(queryset).detections
        noun = "detection" if deleted == 1 else "detections"
        events = "deletion event was" if deleted == 1 else "deletion events were"
        self.message_user(
            request,
            f"Deleted {deleted} {noun}; {deleted} {events} published to every connected client.",
            messages.SUCCESS,
        )
        return None

    def delete_model(self, request, obj):
        writes.detection_delete(detection=obj)

    def delete_queryset(self, request, queryset):
        writes.detections_delete(queryset)

    @admin.action(permissions=["view"], description="Export selected to CSV")
    def export_csv(self, request, queryset):
        return exports.csv_response(request, queryset)
