"""Staff register webhook endpoints here and look after their messages.

An endpoint's secret is shown once, in a message, when the endpoint is created
and when it is rotated; no page shows it again. Messages and their attempts
are read-only (they are what was sent and what came back); a failed or
delivered message can be resent, with its webhook-id.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from detections.models import WebhookAttempt, WebhookEndpoint, WebhookEvent, WebhookMessage
from detections.webhooks import queue, secrets, targets

MANAGE_PERMISSION = "detections.manage_webhooks"


def show_secret_once(request, secret: str, endpoint: WebhookEndpoint):
    messages.warning(
        request,
        format_html(
            "Signing secret of {}: <code>{}</code> — copy it now, it is not shown again.", endpoint.url, secret
        ),
    )


class WebhookEndpointForm(forms.ModelForm):
    # Checked by the SSRF rules instead of Django's URL syntax, which refuses a
    # LAN host without a dot that WEBHOOK_ALLOWED_NETWORKS may well allow.
    url = forms.CharField(max_length=WebhookEndpoint._meta.get_field("url").max_length)
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "cameras", "description", "active"]

    def clean_url(self):
        try:
            return targets.check(self.cleaned_data["url"]).url
        except targets.RefusedTarget as refused:
            raise ValidationError(str(refused)) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "event_list", "active", "disabled_reason", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "description"]
    readonly_fields = ["disabled_reason", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    @admin.display(description="Events")
    def event_list(self, endpoint):
        return ", ".join(endpoint.events)

    def save_model(self, request, obj, form, change):
        if not change:
            request._new_webhook_secret = secrets.give_new_secret(obj)
        if change and obj.active and "active" in form.changed_data:
            obj.disabled_reason = ""  # turned on again by staff
        super().save_model(request, obj, form, change)
        if not change:
            show_secret_once(request, request._new_webhook_secret, obj)

    def has_manage_permission(self, request):
        return request.user.has_perm(MANAGE_PERMISSION)

    @admin.action(description="Rotate the secret of each selected endpoint", permissions=["manage"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            secret = secrets.give_new_secret(endpoint)
            endpoint.save(update_fields=["secret_encrypted", "updated_at"])
            show_secret_once(request, secret, endpoint)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["attempted_at", "status_code", "error", "latency_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookMessage)
class WebhookMessageAdmin(admin.ModelAdmin):
    list_display = [
        "message_id",
        "endpoint",
        "event_type",
        "seq",
        "status",
        "attempt_count",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "endpoint", "event_type"]
    list_select_related = ["endpoint"]
    search_fields = ["message_id"]
    fields = [
        "message_id",
        "endpoint",
        "event_type",
        "seq",
        "status",
        "attempt_count",
        "created_at",
        "first_attempt_at",
        "next_attempt_at",
        "claimed_until",
        "delivered_at",
        "body",
    ]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["resend"]
    # The outbox grows quickly: no full COUNT(*) and no facet counts per page.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_manage_permission(self, request):
        return request.user.has_perm(MANAGE_PERMISSION)

    @admin.action(
        description="Resend the selected messages (same webhook-id, a fresh schedule)", permissions=["manage"]
    )
    def resend(self, request, queryset):
        resent, refused = 0, []
        for message in queryset:
            try:
                queue.resend(message)
                resent += 1
            except queue.NotResendable as reason:
                refused.append(f"{message.message_id}: {reason}")
        if resent:
            self.message_user(request, f"Resent {resent} message(s).")
        for line in refused:
            self.message_user(request, line, level=messages.WARNING)
