"""Staff define routes here (the model checks them as the API does: two
different cameras, a positive distance, limit and window) and read the
journeys paired on them. Journeys are read-only: the engine derives them from
the reads, and an edit of a route derives them again in the background."""

from django.contrib import admin

from detections.models import Journey, Route


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["name", "from_camera", "to_camera", "distance_m", "max_seconds", "speed_limit_kmh", "active"]
    list_filter = ["active"]
    search_fields = ["name"]
    list_select_related = ["from_camera", "to_camera"]
    readonly_fields = ["created_at", "updated_at", "derived"]
    fields = ["name", *Route.DERIVATION_FIELDS, "derived", "created_at", "updated_at"]

    @admin.display(boolean=True, description="history derived")
    def derived(self, route):
        return route.derived_revision == route.revision


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    list_display = ["ended_at", "route", "plate", "seconds", "speed_kmh", "fuzzy", "speeding"]
    list_filter = ["route", "speeding", "fuzzy"]
    list_select_related = ["route"]
    search_fields = ["vehicle", "plate"]
    date_hierarchy = "ended_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
