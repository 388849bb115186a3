"""When an alert rule applies: days of the week and a daily window, in a time zone."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Schedule:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, schedule: dict) -> "Schedule":
        """From a rule's stored schedule, which `conditions.checked_schedule`
        made complete: {"days", "from", "to", "tz"}, with "from" and "to" apart."""
        return cls(
            days=frozenset(schedule["days"]),
            start=time.fromisoformat(schedule["from"]),
            end=time.fromisoformat(schedule["to"]),
            zone=ZoneInfo(schedule["tz"]),
        )

    def covers(self, moment: datetime) -> bool:
        """Whether `moment` falls in the schedule. A window that passes midnight
        belongs to the day it starts: Friday 22:00-06:00 covers Saturday 03:00."""
        local = moment.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= clock < self.end and local.weekday() in self.days
        if clock >= self.start:  # the evening part: today's window
            return local.weekday() in self.days
        if clock < self.end:  # the morning part: yesterday's window
            return (local - timedelta(days=1)).weekday() in self.days
        return False
