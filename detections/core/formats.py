"""How times and stored files are written wherever the service shows them: the
REST API, socket events, the dashboard, exports."""

from datetime import UTC, datetime

# Times the database can hold whatever the offset they came with (MySQL's
# DATETIME spans the years 1000 to 9999; converting 9999-12-31T23:59-01:00 to
# UTC would overflow).
EARLIEST = datetime(1001, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, as protocol.md writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_url(field_file) -> str | None:
    return field_file.url if field_file else None
