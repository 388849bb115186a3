"""When an alert rule applies: days of the week and a daily window, in a time zone."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

ALL_DAYS = frozenset(range(7))


def parse_time(text: str) -> time:
    """'22:00' -> time(22, 0); ValueError for anything else."""
    hours, _, minutes = text.partition(":")
    if not (len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"{text!r} is not a time of day as HH:MM")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class Schedule:
    days: frozenset[int]  # 0 = Monday
    start: time | None
    end: time | None
    zone: ZoneInfo

    @classmethod
    def parse(cls, schedule: dict) -> "Schedule":
        """From the rule's JSON (validated by the API): {"days", "from", "to", "tz"}, each optional."""
        days = schedule.get("days")
        return cls(
            days=frozenset(days) if days is not None else ALL_DAYS,
            start=parse_time(schedule["from"]) if schedule.get("from") else None,
            end=parse_time(schedule["to"]) if schedule.get("to") else None,
            zone=ZoneInfo(schedule.get("tz") or "UTC"),
        )

    def covers(self, moment: datetime) -> bool:
        """Whether `moment` falls in the schedule. A window that passes midnight
        belongs to the day it starts: Friday 22:00-06:00 covers Saturday 03:00."""
        local = moment.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        start, end = self.start or time(0), self.end
        if end is None or end == time(0) or start < end:
            within = clock >= start and (end is None or end == time(0) or clock < end)
            return within and local.weekday() in self.days
        if clock >= start:  # the evening part: today's window
            return local.weekday() in self.days
        if clock < end:  # the morning part: yesterday's window
            return (local - timedelta(days=1)).weekday() in self.days
        return False
