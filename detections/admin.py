"""Staff review detections and delete wrong ones here.

Deleting, one at a time or with the bulk action, goes through the model's
signals like any other path: the files go and every socket gets a `deletion`.
Detections are read-only: they are what a camera saw, and counters follow them.
"""

from django.contrib import admin, messages
from django.utils.html import format_html

from .auth import issue_device_key, new_device_secret, revoke_device_keys, rotate_device_key
from .models import Camera, Detection, DeviceKey


def show_key_once(request, secret: str, cameras):
    names = ", ".join(sorted(c.name for c in cameras))
    messages.warning(
        request,
        format_html(
            "New device key for {}: <code>{}</code> — copy it now, it is not shown again.", names, secret
        ),
    )


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "active_keys", "last_seen_at", "created_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["last_seen_at", "created_at"]
    actions = ["issue_key"]

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


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    list_display = ["thumbnail_preview", "vehicle_type", "camera", "detected_at", "tracking_id", "plate", "confidence"]
    list_display_links = ["thumbnail_preview", "vehicle_type"]
    list_filter = ["vehicle_type", "camera", "detected_at"]
    list_select_related = ["camera"]
    search_fields = ["tracking_id", "plate"]
    date_hierarchy = "detected_at"
    # No COUNT(*) over the whole table on every list page.
    show_full_result_count = False
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
    readonly_fields = fields

    @admin.display(description="Snapshot")
    def thumbnail_preview(self, detection):
        if not detection.thumbnail:
            return "—"
        return format_html('<img src="{}" alt="" style="height:48px;border-radius:3px">', detection.thumbnail.url)

    @admin.display(description="Snapshot")
    def snapshot(self, detection):
        if not detection.image:
            return "No snapshot was sent with this detection."
        return format_html(
            '<a href="{0}"><img src="{0}" alt="Snapshot of detection {1}" style="max-width:100%;max-height:480px"></a>',
            detection.image.url,
            detection.pk,
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
