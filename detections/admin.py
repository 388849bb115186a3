"""Staff review detections and delete wrong ones here.

Deleting, one at a time or with the bulk action, goes through the model's
signals like any other path: the files go and every socket gets a `deletion`.
Detections are read-only: they are what a camera saw, and counters follow them.
"""

from django.contrib import admin
from django.utils.html import format_html

from .models import Camera, Detection


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "last_seen_at", "created_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["last_seen_at", "created_at"]


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
