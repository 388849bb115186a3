"""Staff keep watch-lists and alert rules here, load plates from CSV (with a
preview of what would change), and review and acknowledge alerts.

Entries are written through `detections.alerts.entries` as the API writes
them, so the normal form is set the same way, and the entry search finds a
plate however it is spelled ("34 abc 123" finds 34A8C123). Alerts are
read-only: they record what happened.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from detections.alerts import acknowledgements, conditions, entries, imports
from detections.alerts.plates import normalize
from detections.models import Alert, AlertRule, Watchlist, WatchlistEntry


class PlateImportForm(forms.Form):
    """The import page's form: a file or pasted text, and the mode. Once
    previewed, the text rides along in a hidden field to be confirmed."""

    csv_file = forms.FileField(required=False, label="CSV file", help_text="header row: plate,note,expires_at")
    csv_text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}), label="or paste it here")
    mode = forms.ChoiceField(
        choices=[
            (imports.Mode.MERGE.value, "Merge: add new plates, update the note and expiry of listed ones"),
            (imports.Mode.REPLACE.value, "Replace: also remove the plates the file does not name"),
        ],
        initial=imports.Mode.MERGE.value,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, confirming: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if confirming:
            del self.fields["csv_file"]
            self.fields["csv_text"].widget = forms.HiddenInput()
            self.fields["mode"].widget = forms.HiddenInput()

    def clean(self):
        data = super().clean()
        upload = data.get("csv_file")
        if upload:
            try:
                data["text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        else:
            data["text"] = data.get("csv_text", "")
        if not data["text"].strip():
            raise forms.ValidationError("Choose a CSV file or paste its lines.")
        return data


def _count_per_watchlist(model):
    rows = model.objects.filter(watchlist=OuterRef("pk")).order_by().values("watchlist").annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), Value(0))


@admin.register(Watchlist)
class WatchlistAdmin(admin.ModelAdmin):
    list_display = ["name", "match", "max_edits", "active", "plate_count", "rule_count"]
    list_editable = ["active"]
    list_filter = ["active", "match"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]
    change_form_template = "admin/detections/watchlist/change_form.html"

    def get_queryset(self, request):
        # Subqueries, not two joins: a join of entries and rules would multiply their rows.
        return (
            super()
            .get_queryset(request)
            .annotate(plate_count=_count_per_watchlist(WatchlistEntry), rule_count=_count_per_watchlist(AlertRule))
        )

    @admin.display(description="Plates", ordering="plate_count")
    def plate_count(self, watchlist):
        url = reverse("admin:detections_watchlistentry_changelist") + f"?watchlist__id__exact={watchlist.pk}"
        return format_html('<a href="{}">{}</a>', url, watchlist.plate_count)

    @admin.display(description="Rules", ordering="rule_count")
    def rule_count(self, watchlist):
        return watchlist.rule_count

    def delete_model(self, request, obj):
        entries.delete_watchlist(obj)

    def delete_queryset(self, request, queryset):
        for watchlist in queryset:
            entries.delete_watchlist(watchlist)

    def get_urls(self):
        import_view = self.admin_site.admin_view(self.import_view)
        return [path("<path:object_id>/import/", import_view, name="detections_watchlist_import"), *super().get_urls()]

    def import_view(self, request, object_id):
        """Upload (or paste) a CSV, see what it would change, then confirm."""
        watchlist = get_object_or_404(Watchlist, pk=object_id)
        if not self.has_change_permission(request, watchlist):
            raise PermissionDenied
        form = PlateImportForm(request.POST or None, request.FILES or None)
        preview = None
        if request.method == "POST" and form.is_valid():
            text, mode = form.cleaned_data["text"], imports.Mode(form.cleaned_data["mode"])
            try:
                if "_confirm" in request.POST:
                    return self._imported(request, watchlist, imports.import_csv(watchlist, text, mode))
                preview = imports.preview(watchlist, text, mode)
            except (imports.InvalidCsv, imports.ImportConflict, imports.ReplaceRefused) as problem:
                form.add_error(None, str(problem))
            else:
                form = PlateImportForm(initial={"csv_text": text, "mode": mode.value}, confirming=True)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import plates into {watchlist}",
            "opts": self.model._meta,
            "original": watchlist,
            "form": form,
            "preview": preview,
        }
        return TemplateResponse(request, "admin/detections/watchlist_import.html", context)

    def _imported(self, request, watchlist, outcome: dict):
        bad = len(outcome["errors"])
        self.message_user(
            request,
            f"Imported into {watchlist}: {outcome['added']} added, {outcome['updated']} updated, "
            f"{outcome['removed']} removed" + (f"; {bad} bad line(s) skipped." if bad else "."),
            messages.WARNING if bad else messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:detections_watchlist_change", args=[watchlist.pk]))


class WatchlistEntryForm(forms.ModelForm):
    class Meta:
        model = WatchlistEntry
        fields = ["watchlist", "plate", "note", "expires_at"]

    def clean_plate(self):
        return _checked(entries.checked_plate, self.cleaned_data["plate"])

    def clean_note(self):
        return _checked(entries.checked_note, self.cleaned_data["note"])

    def validate_unique(self):
        # The unique (watchlist, plate_normalized) constraint names a field the
        # form does not have, so Django skips it: checked here, on the normal form.
        super().validate_unique()
        if {"watchlist", "plate"} & self.errors.keys():
            return
        existing = entries.same_plate_elsewhere(self.instance)
        if existing is not None:
            self.add_error("plate", f"{existing.plate_normalized} is on this list already (typed '{existing.plate}').")


def _checked(check, value):
    try:
        return check(value)
    except ValueError as problem:
        raise forms.ValidationError(str(problem)) from None


@admin.register(WatchlistEntry)
class WatchlistEntryAdmin(admin.ModelAdmin):
    form = WatchlistEntryForm
    list_display = ["plate", "plate_normalized", "watchlist", "note", "expires_at", "created_at"]
    list_filter = ["watchlist"]
    list_select_related = ["watchlist"]
    search_fields = ["plate", "note"]
    readonly_fields = ["plate_normalized", "created_at"]

    def get_search_results(self, request, queryset, search_term):
        """Also entries whose normal form contains the term's: a search for
        "34 abc 123" finds 34A8C123, as matching would."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        normalized = normalize(search_term)
        if normalized:
            found |= queryset.filter(plate_normalized__contains=normalized)
        return found, may_have_duplicates

    def save_model(self, request, obj, form, change):
        entries.with_normal_form(obj)
        super().save_model(request, obj, form, change)


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = [
            "name",
            "watchlist",
            "cameras",
            "vehicle_types",
            "min_confidence",
            "schedule",
            "cooldown_seconds",
            "active",
        ]

    def clean_cameras(self):
        return _checked(conditions.checked_cameras, self.cleaned_data["cameras"])

    def clean_vehicle_types(self):
        return _checked(conditions.checked_vehicle_types, self.cleaned_data["vehicle_types"])

    def clean_schedule(self):
        return _checked(conditions.checked_schedule, self.cleaned_data["schedule"])


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["name", "watchlist", "cameras", "vehicle_types", "min_confidence", "cooldown_seconds", "active"]
    list_filter = ["active", "watchlist"]
    list_select_related = ["watchlist"]
    search_fields = ["name"]


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "seq",
        "created_at",
        "rule_name",
        "watchlist_name",
        "matched_plate",
        "distance",
        "camera",
        "vehicle_type",
        "detected_at",
        "acknowledged_at",
        "acknowledged_by",
    ]
    list_filter = ["rule", "camera", AcknowledgedFilter]
    list_select_related = ["acknowledged_by"]
    search_fields = ["matched_plate", "rule_name", "watchlist_name"]
    # Alerts pile up: no COUNT(*) of the whole table on each page, nor one per filter choice.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["acknowledge_selected"]
    fields = [
        "seq",
        "created_at",
        "rule",
        "rule_name",
        "watchlist",
        "watchlist_name",
        "entry_id",
        "matched_plate",
        "distance",
        "detection_link",
        "camera",
        "vehicle_type",
        "detected_at",
        "detection",
        "acknowledged_at",
        "acknowledged_by",
    ]
    readonly_fields = fields

    @admin.display(description="Detection id")
    def detection_link(self, alert):
        url = reverse("admin:detections_detection_change", args=[alert.detection_id])
        return format_html('<a href="{}">{}</a>', url, alert.detection_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(permissions=["view"], description="Acknowledge the selected alerts")
    def acknowledge_selected(self, request, queryset):
        selected = queryset.count()
        now = acknowledgements.acknowledge(queryset, request.user)
        before = f"; {selected - now} had been acknowledged before" if selected > now else ""
        self.message_user(request, f"Acknowledged {now} alert(s){before}.", messages.SUCCESS)
