"""/api/watchlists/, their plates (one at a time or a CSV import) and
/api/alert-rules/ (protocol.md, "Watch-lists and alerts"): for users with the
'manage watchlists' permission only, whatever PUBLIC_FEED says.

Writes go through `detections.alerts.entries` and `detections.alerts.imports`;
single saves and deletes reach every process through the model signals, bulk
ones through `config.changed()`.
"""

import codecs

from django.conf import settings
from django.db.models import Count, ProtectedError
from django.shortcuts import get_object_or_404
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, mixins, parsers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from detections.alerts import entries, imports
from detections.api.alert_serializers import AlertRuleSerializer, WatchlistEntrySerializer, WatchlistSerializer
from detections.api.errors import error_response
from detections.api.pagination import NumberedPages
from detections.api.parsers import RequestTooLarge
from detections.api.permissions import CanManageWatchlists
from detections.api.schema import ERROR_BODY
from detections.models import AlertRule, Watchlist, WatchlistEntry

# Every method but PUT: a list or rule is changed field by field with PATCH.
METHODS = ["get", "post", "patch", "delete", "head", "options"]


class CsvParser(parsers.BaseParser):
    """A text/csv body as text, in its charset (UTF-8 by default, a byte-order
    mark dropped; a charset DRF does not decode is a 400), held to
    DATA_UPLOAD_MAX_MEMORY_SIZE."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"The CSV is larger than {limit} bytes; import it in parts.")
        encoding = parsers.get_encoding(parser_context or {})
        if codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"
        try:
            return raw.decode(encoding)
        except UnicodeError as problem:  # some codecs (punycode, idna) fail with no position
            raise exceptions.ParseError(f"The CSV is not valid {encoding} text: {problem}.") from None


IMPORT_RESULT = inline_serializer(
    "PlateImportResult",
    {
        "added": serializers.IntegerField(),
        "updated": serializers.IntegerField(help_text="entries whose note or expiry changed"),
        "removed": serializers.IntegerField(help_text="replace only: entries the file does not name"),
        "errors": inline_serializer(
            "PlateImportError",
            {
                "line": serializers.IntegerField(help_text="the header is line 1"),
                "detail": serializers.CharField(),
            },
            many=True,
        ),
    },
)
IMPORT_REFUSED = inline_serializer(
    "PlateImportRefused",
    {
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "errors": inline_serializer(
            "PlateImportLineError",
            {
                "line": serializers.IntegerField(help_text="the header is line 1"),
                "detail": serializers.CharField(),
            },
            many=True,
        ),
    },
)
WATCHLIST_IN_USE = inline_serializer(
    "WatchlistInUse",
    {
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "rules": inline_serializer(
            "RuleReference", {"id": serializers.IntegerField(), "name": serializers.CharField()}, many=True
        ),
    },
)
PLATE_ALREADY_LISTED = inline_serializer(
    "PlateAlreadyListed",
    {
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "field": serializers.CharField(),
        "entry_id": serializers.IntegerField(help_text="the entry that has this plate"),
    },
)


@extend_schema_view(destroy=extend_schema(responses={204: None, 409: WATCHLIST_IN_USE}))
class WatchlistViewSet(viewsets.ModelViewSet):
    """/api/watchlists/: lists of plates to watch for."""

    documented_media_types = ["application/json"]  # forms are read too (schema.ApiSchema.map_parsers)

    queryset = Watchlist.objects.annotate(plate_count=Count("entries")).order_by("name")
    serializer_class = WatchlistSerializer
    permission_classes = [CanManageWatchlists]
    pagination_class = NumberedPages
    http_method_names = METHODS
    lookup_value_regex = "[0-9]+"

    def destroy(self, request, *args, **kwargs):
        watchlist = self.get_object()
        try:
            entries.delete_watchlist(watchlist)
        except ProtectedError:
            rules = list(watchlist.rules.order_by("id").values("id", "name"))
            named = ", ".join(f"'{rule['name']}' ({rule['id']})" for rule in rules)
            response = error_response(
                status.HTTP_409_CONFLICT,
                "watchlist_in_use",
                f"Alert rules use this watch-list: {named}. Delete them or give them another list first.",
            )
            response.data["rules"] = rules
            return response
        return Response(status=status.HTTP_204_NO_CONTENT)


WATCHLIST_ID = OpenApiParameter("watchlist_id", OpenApiTypes.INT, OpenApiParameter.PATH)
ENTRY_ID = OpenApiParameter("entry_id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(parameters=[WATCHLIST_ID]),
    destroy=extend_schema(parameters=[WATCHLIST_ID, ENTRY_ID]),
)
class WatchlistPlatesViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """/api/watchlists/{watchlist_id}/plates/: a list's entries, alphabetical by normalised plate."""

    documented_media_types = ["application/json"]  # forms are read too; the import documents text/csv

    serializer_class = WatchlistEntrySerializer
    permission_classes = [CanManageWatchlists]
    pagination_class = NumberedPages
    lookup_url_kwarg = "entry_id"
    lookup_value_regex = "[0-9]+"

    @cached_property
    def watchlist(self) -> Watchlist:
        return get_object_or_404(Watchlist, pk=self.kwargs["watchlist_id"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no list
            return WatchlistEntry.objects.none()
        return WatchlistEntry.objects.filter(watchlist=self.watchlist).order_by("plate_normalized")

    @extend_schema(
        parameters=[WATCHLIST_ID],
        responses={
            201: WatchlistEntrySerializer,
            409: OpenApiResponse(PLATE_ALREADY_LISTED, description="The same normalised plate is on the list"),
        },
    )
    def create(self, request, watchlist_id):
        checked = self.get_serializer(data=request.data)
        checked.is_valid(raise_exception=True)
        try:
            entry = entries.add_entry(self.watchlist, **checked.validated_data)
        except entries.PlateAlreadyListed as listed:
            response = error_response(status.HTTP_409_CONFLICT, "plate_already_listed", str(listed), field="plate")
            response.data["entry_id"] = listed.existing.pk
            return response
        return Response(self.get_serializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"text/csv": OpenApiTypes.STR},
        parameters=[
            WATCHLIST_ID,
            OpenApiParameter(
                "mode",
                OpenApiTypes.STR,
                enum=[mode.value for mode in imports.Mode],
                default=imports.Mode.MERGE.value,
                description="merge: add new plates, update the note and expiry of listed ones, "
                "leaving bad lines out; replace: also remove the entries the file does not name, "
                "all or nothing (any bad line is a 422 and changes nothing)",
            ),
        ],
        responses={
            200: IMPORT_RESULT,
            422: OpenApiResponse(IMPORT_REFUSED, description="replace only: the file has bad lines; nothing changed"),
            409: OpenApiResponse(ERROR_BODY, description="Two plates of the file are one to the database"),
        },
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[CsvParser])
    def import_csv(self, request, watchlist_id):
        """A header row `plate,note,expires_at`, then one entry a line; bad lines
        are reported by line number (the header is line 1) and, in a merge, the
        rest imported."""
        try:
            mode = imports.Mode(request.query_params.get("mode", imports.Mode.MERGE))
        except ValueError:
            return error_response(
                status.HTTP_400_BAD_REQUEST, "invalid", "mode must be 'merge' or 'replace'.", field="mode"
            )
        text = request.data if isinstance(request.data, str) else ""
        try:
            return Response(imports.import_csv(self.watchlist, text, mode))
        except imports.InvalidCsv as invalid:
            return error_response(status.HTTP_400_BAD_REQUEST, "invalid_csv", str(invalid))
        except imports.ReplaceRefused as refused:
            response = error_response(status.HTTP_422_UNPROCESSABLE_ENTITY, "import_refused", str(refused))
            response.data["errors"] = refused.errors
            return response
        except imports.ImportConflict as conflict:
            return error_response(status.HTTP_409_CONFLICT, "plate_conflict", str(conflict))


class AlertRuleViewSet(viewsets.ModelViewSet):
    """/api/alert-rules/: what raises an alert; every condition given must hold."""

    documented_media_types = ["application/json"]  # forms are read too (schema.ApiSchema.map_parsers)

    queryset = AlertRule.objects.all()
    serializer_class = AlertRuleSerializer
    permission_classes = [CanManageWatchlists]
    pagination_class = NumberedPages
    http_method_names = METHODS
    lookup_value_regex = "[0-9]+"


class OptionalSlashRouter(SimpleRouter):
    """Paths with a trailing slash or none, as the legacy ones (SimpleRouter's
    trailing_slash argument only switches "/" on or off)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("watchlists", WatchlistViewSet, basename="watchlist")
router.register(r"watchlists/(?P<watchlist_id>[0-9]+)/plates", WatchlistPlatesViewSet, basename="watchlist-plate")
router.register("alert-rules", AlertRuleViewSet, basename="alert-rule")

urlpatterns = router.urls
