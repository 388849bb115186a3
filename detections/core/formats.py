"""How times and stored files are written wherever the service shows them: the
REST API, socket events, the dashboard, exports."""

from datetime import UTC, datetime


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, as protocol.md writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_url(field_file) -> str | None:
    return field_file.url if field_file else None
