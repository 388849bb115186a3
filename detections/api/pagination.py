from datetime import datetime

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class DetectionCursorPagination(CursorPagination):
    """Stable pages, newest first, that cost the same on page 1 and page 10,000:
    no OFFSET and no COUNT(*) over the table."""

    ordering = ("-detected_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500

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
