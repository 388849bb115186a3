from rest_framework.pagination import CursorPagination


class DetectionCursorPagination(CursorPagination):
    """Stable pages, newest first, that cost the same on page 1 and page 10,000:
    no OFFSET and no COUNT(*) over the table."""

    ordering = ("-detected_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500
