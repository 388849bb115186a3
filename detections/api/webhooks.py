"""/api/webhooks/: endpoints that receive events by HTTP POST (protocol.md,
"Webhooks"), their messages with every attempt, and resending one.

Everything here needs the `manage webhooks` permission. An endpoint's secret
is in the answer that creates it and in the one that rotates it, and nowhere
else, ever: only its encryption is stored (`detections.webhooks.secrets`).
"""

import json

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from detections.api.errors import error_response
from detections.api.pagination import StrictCursor
from detections.api.permissions import CanManageWebhooks
from detections.api.queries import QuerySerializer
from detections.api.schema import ERROR_BODY
from detections.api.serializers import ApiModelSerializer
from detections.core.formats import format_time
from detections.ingest.typed import StrictCharField
from detections.models import Camera, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookEvent, WebhookMessage
from detections.webhooks import queue, secrets, targets


class UtcTimeField(serializers.DateTimeField):
    """A read-only time, written as every answer of the API writes times."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return format_time(value) if value else None


class WebhookEndpointSerializer(ApiModelSerializer):
    url = StrictCharField(
        max_length=WebhookEndpoint._meta.get_field("url").max_length,
        help_text="http or https; its host must resolve to public addresses or to WEBHOOK_ALLOWED_NETWORKS",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        allow_empty=False,
        min_length=1,  # for the schema; an empty list is refused as "empty" first
        help_text="the event types it receives (at least one)",
    )
    cameras = serializers.ListField(
        child=StrictCharField(max_length=Camera._meta.get_field("name").max_length),
        required=False,
        help_text="names of existing cameras (another name is a 400); empty: every camera",
    )
    disabled_reason = serializers.CharField(
        read_only=True, help_text="why the service turned it off (it answered 410 Gone); empty otherwise"
    )
    created_at = UtcTimeField()
    updated_at = UtcTimeField()

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "events",
            "cameras",
            "description",
            "active",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]

    def validate_url(self, value):
        try:
            return targets.check(value).url
        except targets.RefusedTarget as refused:
            raise serializers.ValidationError(str(refused), code="refused_target") from None

    def validate_events(self, value):
        return list(dict.fromkeys(value))

    def validate_cameras(self, value):
        names = list(dict.fromkeys(value))
        unknown = set(names) - set(Camera.objects.filter(name__in=names).values_list("name", flat=True))
        if unknown:
            raise serializers.ValidationError(f"No camera named {', '.join(sorted(unknown))}.", code="unknown_camera")
        return names

    def update(self, instance, validated_data):
        if validated_data.get("active") and not instance.active:
            instance.disabled_reason = ""  # turned on again by staff
        return super().update(instance, validated_data)


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="whsec_...: shown in this answer only")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookAttemptSerializer(ApiModelSerializer):
    attempted_at = UtcTimeField()
    status_code = serializers.IntegerField(read_only=True, allow_null=True, help_text="null: no HTTP answer")
    error = serializers.CharField(read_only=True, help_text="what went wrong without an HTTP answer (or empty)")

    class Meta:
        model = WebhookAttempt
        fields = ["attempted_at", "status_code", "error", "latency_ms"]


class WebhookMessageSerializer(ApiModelSerializer):
    created_at = UtcTimeField()
    first_attempt_at = UtcTimeField()
    delivered_at = UtcTimeField()
    next_attempt_at = serializers.SerializerMethodField()
    payload = serializers.SerializerMethodField()
    attempts = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookMessage
        fields = [
            "message_id",
            "event_type",
            "seq",
            "status",
            "attempt_count",
            "created_at",
            "first_attempt_at",
            "next_attempt_at",
            "delivered_at",
            "payload",
            "attempts",
        ]

    def get_next_attempt_at(self, message) -> str | None:
        """When it is (or is being) sent next; null unless pending."""
        return format_time(message.next_attempt_at) if message.status == MessageStatus.PENDING else None

    def get_payload(self, message) -> dict:
        """The JSON body every attempt sends."""
        return json.loads(message.body)


class MessageCursorPagination(StrictCursor, CursorPagination):
    """Newest first, stable pages, no COUNT(*)."""

    ordering = "-id"
    page_size = 50

    def decode_cursor(self, request):
        # A made-up cursor is a 404 like any invalid one, never a database error.
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not str(cursor.position).isdigit():
            raise NotFound(self.invalid_cursor_message)
        return cursor


class MessageQuerySerializer(QuerySerializer):
    status = serializers.ChoiceField(choices=MessageStatus.choices, required=False)


MESSAGE_PAGE = inline_serializer(
    "PaginatedWebhookMessageList",
    {
        "next": serializers.URLField(allow_null=True, help_text="the next (older) page, or null"),
        "previous": serializers.URLField(allow_null=True, help_text="the previous (newer) page, or null"),
        "results": WebhookMessageSerializer(many=True),
    },
)
MESSAGE_ID = OpenApiParameter("message_id", str, OpenApiParameter.PATH, description="msg_...: the webhook-id")


@extend_schema_view(
    list=extend_schema(summary="List the webhook endpoints", responses={200: WebhookEndpointSerializer(many=True)}),
    create=extend_schema(
        summary="Register a webhook endpoint",
        responses={201: WebhookEndpointWithSecretSerializer},
    ),
    retrieve=extend_schema(summary="One webhook endpoint", responses={200: WebhookEndpointSerializer}),
    partial_update=extend_schema(
        summary="Change a webhook endpoint",
        responses={200: WebhookEndpointSerializer},
    ),
    destroy=extend_schema(summary="Delete a webhook endpoint and its messages", responses={204: None}),
)
class WebhookEndpointViewSet(viewsets.ModelViewSet):
    documented_media_types = ["application/json"]  # forms are read too (schema.ApiSchema.map_parsers)
    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookEndpointSerializer
    permission_classes = [CanManageWebhooks]
    lookup_value_regex = "[0-9]+"
    pagination_class = None  # a handful, registered by staff
    filter_backends = []
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = secrets.new_secret()
        serializer.save(secret_encrypted=secrets.encrypt(secret))
        return Response({**serializer.data, "secret": secret}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Give the endpoint a new secret (the old one stops working at once)",
        request=None,
        responses={200: WebhookEndpointWithSecretSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        endpoint = self.get_object()
        secret = secrets.give_new_secret(endpoint)
        endpoint.save(update_fields=["secret_encrypted", "updated_at"])
        return Response({**WebhookEndpointSerializer(endpoint).data, "secret": secret})

    @extend_schema(
        summary="The endpoint's messages, newest first, with every attempt",
        parameters=[MessageQuerySerializer, *MessageCursorPagination.parameters()],
        responses={200: MESSAGE_PAGE},
    )
    @action(detail=True, methods=["get"], url_path="messages")
    def messages(self, request, pk=None):
        endpoint = self.get_object()
        query = MessageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        messages = endpoint.messages.prefetch_related("attempts")
        if "status" in query.validated_data:
            messages = messages.filter(status=query.validated_data["status"])
        paginator = MessageCursorPagination()
        page = paginator.paginate_queryset(messages, request, view=self)
        return paginator.get_paginated_response(WebhookMessageSerializer(page, many=True).data)

    @extend_schema(
        summary="Send a failed or delivered message again (same webhook-id, a fresh schedule)",
        request=None,
        parameters=[MESSAGE_ID],
        responses={
            200: WebhookMessageSerializer,
            409: OpenApiResponse(ERROR_BODY, description="pending already, or the endpoint is turned off"),
        },
    )
    @action(detail=True, methods=["post"], url_path=r"messages/(?P<message_id>[^/]+)/resend")
    def resend(self, request, pk=None, message_id=None):
        endpoint = self.get_object()
        message = get_object_or_404(WebhookMessage, endpoint=endpoint, message_id=message_id)
        try:
            message = queue.resend(message)
        except queue.NotResendable as refused:
            return error_response(status.HTTP_409_CONFLICT, "not_resendable", str(refused))
        message = WebhookMessage.objects.prefetch_related("attempts").get(pk=message.pk)
        return Response(WebhookMessageSerializer(message).data)


router = SimpleRouter()
# Paths take a trailing slash or none, as the legacy ones do (the constructor
# only knows "/" or "").
router.trailing_slash = "/?"
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")
urlpatterns = router.urls
