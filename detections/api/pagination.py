"""The API's pages: cursors for what grows without bound (detections, alerts,
webhook messages), numbers for what staff keep (watch-lists, plates, rules).
Either way `page_size` is an integer from 1 to 500, and any other value is a
400 (DRF alone would fall back to the default, and cap a larger one)."""

from datetime import datetime

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination

from detections.api.queries import BLANK, positive_integer

MAX_PAGE_SIZE = 500


class StrictPageSize:
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request):
        return positive_integer(request.query_params, self.page_size_query_param, self.max_page_size) or self.page_size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
        return parameters


class StrictCursor(StrictPageSize):
    @classmethod
    def parameters(cls) -> list[OpenApiParameter]:
        """The schema's parameters, for an action that pages by hand (no list
        view, so the schema generator does not see the paginator)."""
        return [
            OpenApiParameter("cursor", {"type": "string", "minLength": 1}, description="the next or previous page"),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": cls.max_page_size},
                description=f"items a page (default {cls.page_size})",
            ),
        ]

    def decode_cursor(self, request):
        if request.query_params.get(self.cursor_query_param) == "":
            raise ValidationError({self.cursor_query_param: [BLANK]}, code="blank")
        return super().decode_cursor(request)


class DetectionCursorPagination(StrictCursor, CursorPagination):
    """Stable pages, newest first, that cost the same on page 1 and page 10,000:
    no OFFSET and no COUNT(*) over the table."""

    ordering = ("-detected_at", "-id")

    def decode_cursor(self, request):
        # A cursor is only opaque, not signed: one made up by a client must be a
        # 404 like any other invalid cursor, not a database error.
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                position = datetime.fromisoformat(cursor.position)
            except ValueError:
                position = None
            # The cursors we make hold an aware time the database can store.
            if position is None or position.tzinfo is None or not 1001 <= position.year <= 9998:
                raise NotFound(self.invalid_cursor_message)
        return cursor


class NumberedPages(StrictPageSize, PageNumberPagination):
    """Lists, plates and rules are counted in hundreds or thousands, not
    millions: numbered pages with a count (`?page=2&page_size=100`); a page
    past the last is a 404."""

    def get_page_number(self, request, paginator):
        text = request.query_params.get(self.page_query_param, "")
        if text.isascii() and text.isdigit() and len(text) > 18:
            raise NotFound(self.invalid_page_message.format(page_number=text[:20], message="past the last page"))
        return positive_integer(request.query_params, self.page_query_param) or 1

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1)
                parameter["description"] = "a page number from 1; a page past the last is a 404"
        return parameters
