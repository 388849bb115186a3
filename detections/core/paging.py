"""Reading a large set of rows (detections, journeys) page by page, oldest first."""

from collections.abc import Iterator

from django.db.models import Q


def time_ordered_pages(
    queryset, fields: list[str], page_size: int, *, time_field: str = "detected_at"
) -> Iterator[list[tuple]]:
    """The rows of `queryset` as value tuples ("id", time_field, *fields), one list per page.

    Keyset pages on (time_field, id): each page starts after the last row of
    the one before, so the millionth row costs what the first did, and rows
    stored or deleted meanwhile never shift a page. (QuerySet.iterator() would
    not do: MySQL's driver fetches a whole result set into memory however it
    is iterated.)
    """
    rows = queryset.order_by(time_field, "id").values_list("id", time_field, *fields)
    page = rows
    while True:
        batch = list(page[:page_size])
        if batch:
            yield batch
        if len(batch) < page_size:
            return
        pk, moment = batch[-1][:2]
        page = rows.filter(Q(**{f"{time_field}__gt": moment}) | Q(**{time_field: moment, "id__gt": pk}))
