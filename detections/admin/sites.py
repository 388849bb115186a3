"""Staff define sites here, with their cameras' roles inline, and read the
visits the engine derived (read-only: visits are what the reads say)."""

from django.contrib import admin

from detections.sites import edits
from detections.sites.models import Site, SiteCamera, Visit


class SiteCameraInline(admin.TabularInline):
    model = SiteCamera
    extra = 1
    autocomplete_fields = ["camera"]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    inlines = [SiteCameraInline]
    list_display = ["name", "tz", "capacity", "max_stay_seconds", "active", "deriving"]
    list_filter = ["active"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(boolean=True, description="Deriving history")
    def deriving(self, site):
        return site.derived_revision != site.revision

    def save_model(self, request, obj, form, change):
        # What the visits depend on before the edit: the roles are saved after
        # the site (save_related), so the comparison comes then.
        request._site_before = edits.derivation_inputs(Site.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if request._site_before is not None:
            edits.roles_changed(form.instance, request._site_before)


@admin.register(Visit)
class VisitAdmin(admin.ModelAdmin):
    list_display = ["plate", "site", "state", "entered_at", "exited_at", "duration_seconds", "overstay"]
    list_filter = ["site", "state", "overstay"]
    search_fields = ["plate", "vehicle"]
    date_hierarchy = "anchor_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
