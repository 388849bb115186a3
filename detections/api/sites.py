"""/api/sites/ and /api/visits/ (protocol.md, "Sites, visits and occupancy"):
sites with their cameras' roles, the visits the engine derived, occupancy and
dwell. Writes go through `detections.sites.edits`; reads come from stored
visits (`detections.sites.queries`), never from a scan of the detections.
"""

from datetime import UTC

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from detections.api.permissions import CanManageSites
from detections.api.schema import ERROR_BODY
from detections.core.formats import format_time
from detections.models import Camera
from detections.sites import edits
from detections.sites.models import Role, Site, validate_tz

ERRORS = {code: ERROR_BODY for code in (400, 401, 403, 404)}
ROLES = ", ".join(Role.values)


class TimeField(serializers.DateTimeField):
    """ISO 8601 in, UTC without an offset; written as every time of the API is."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        return super().to_internal_value(value)

    def to_representation(self, value):
        return format_time(value) if value else None


@extend_schema_field(
    {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["camera", "role"],
            "properties": {"camera": {"type": "string"}, "role": {"type": "string", "enum": Role.values}},
        },
    }
)
class CameraRolesField(serializers.Field):
    """[{"camera": "gate-1", "role": "entry"}, ...]: camera names that exist,
    each once, each with a role."""

    default_error_messages = {"invalid": 'expected a list of {"camera": name, "role": entry|exit|both}.'}

    def to_internal_value(self, data):
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError("give at least one camera with its role.", code="required")
        names, roles = [], []
        for index, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("camera"), str):
                raise serializers.ValidationError(
                    f'cameras[{index}] must be {{"camera": name, "role": {ROLES}}}.', code="invalid"
                )
            if item.get("role") not in Role.values:
                raise serializers.ValidationError(
                    f"cameras[{index}].role: {item.get('role')!r} is not a role; accepted: {ROLES}.",
                    code="invalid_role",
                )
            names.append(item["camera"])
            roles.append(item["role"])
        if len(set(names)) != len(names):
            raise serializers.ValidationError("each camera may be named once.", code="duplicate_camera")
        found = {camera.name: camera for camera in Camera.objects.filter(name__in=names)}
        unknown = [name for name in names if name not in found]
        if unknown:
            raise serializers.ValidationError(f"No camera named {', '.join(unknown)}.", code="unknown_camera")
        return [edits.CameraRole(found[name], role) for name, role in zip(names, roles, strict=True)]

    def to_representation(self, roles):
        return [
            {"camera": camera_name, "role": role}
            for camera_name, role in roles.order_by("camera__name").values_list("camera__name", "role")
        ]


class SiteSerializer(serializers.ModelSerializer):
    cameras = CameraRolesField(help_text="the site's cameras, each with its role: entry, exit or both")
    tz = serializers.CharField(max_length=64, required=False, default="UTC", help_text="an IANA time zone")
    capacity = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    repeat_seconds = serializers.IntegerField(min_value=0, required=False)
    absent_after_seconds = serializers.IntegerField(min_value=1, required=False)
    max_stay_seconds = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    max_edits = serializers.IntegerField(min_value=0, max_value=2, required=False)
    since = TimeField(required=False, allow_null=True, help_text="covers reads at or after this; null: its creation")
    deriving = serializers.SerializerMethodField(help_text="true while its history is being derived again")
    created_at = TimeField(read_only=True)
    updated_at = TimeField(read_only=True)

    class Meta:
        model = Site
        fields = [
            "id",
            "name",
            "tz",
            "capacity",
            "cameras",
            "repeat_seconds",
            "absent_after_seconds",
            "max_stay_seconds",
            "max_edits",
            "since",
            "active",
            "deriving",
            "created_at",
            "updated_at",
        ]

    def validate_name(self, value):
        value = value.strip()
        if not value or not value.isprintable():
            raise serializers.ValidationError("name must be printable text.", code="invalid")
        return value

    def validate_tz(self, value):
        try:
            validate_tz(value)
        except Exception as problem:
            raise serializers.ValidationError(problem.messages[0], code="invalid_tz") from None
        return value

    def get_deriving(self, site) -> bool:
        return site.derived_revision != site.revision

    def create(self, validated_data):
        return edits.site_create(**validated_data)

    def update(self, instance, validated_data):
        return edits.site_update(instance, **validated_data)


@extend_schema_view(
    list=extend_schema(summary="List the sites", responses={200: SiteSerializer(many=True), **ERRORS}),
    create=extend_schema(summary="Define a site", responses={201: SiteSerializer, **ERRORS}),
    retrieve=extend_schema(summary="One site", responses={200: SiteSerializer, **ERRORS}),
    partial_update=extend_schema(summary="Change a site", responses={200: SiteSerializer, **ERRORS}),
    destroy=extend_schema(summary="Delete a site and its visits", responses={204: None, **ERRORS}),
)
class SiteViewSet(viewsets.ModelViewSet):
    queryset = Site.objects.order_by("name")
    serializer_class = SiteSerializer
    permission_classes = [CanManageSites]
    lookup_value_regex = "[0-9]+"
    pagination_class = None  # a handful, defined by staff
    filter_backends = []
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def destroy(self, request, *args, **kwargs):
        edits.site_delete(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


router = SimpleRouter()
router.trailing_slash = "/?"
router.register("sites", SiteViewSet, basename="site")
urlpatterns = router.urls
