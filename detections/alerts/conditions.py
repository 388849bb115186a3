"""What an alert rule's conditions may hold, checked the same way for the API
and the admin. Each check answers the value as it is stored, or raises
ValueError with a sentence saying what is wrong.

A schedule is stored complete: {"days": [0-6, sorted, 0 = Monday], "from":
"HH:MM", "to": "HH:MM", "tz": "Area/City"} (tz defaults to UTC; from and to
differ, and a window whose `to` is earlier than its `from` passes midnight).
"""

import re
import zoneinfo

from detections.models import VehicleType

CAMERA_NAME_MAX_LENGTH = 100
SCHEDULE_KEYS = ("days", "from", "to", "tz")
_CLOCK_TIME = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


def checked_cameras(cameras) -> list[str]:
    """Camera names, each once, in the order given (empty or None: every camera)."""
    if cameras is None:
        return []
    if not isinstance(cameras, list) or not all(isinstance(name, str) for name in cameras):
        raise ValueError("cameras must be a list of camera names.")
    names = [name.strip() for name in cameras]
    if not all(names) or any(len(name) > CAMERA_NAME_MAX_LENGTH for name in names):
        raise ValueError(f"a camera name is 1 to {CAMERA_NAME_MAX_LENGTH} characters.")
    return list(dict.fromkeys(names))


def checked_vehicle_types(vehicle_types) -> list[str]:
    """Vehicle types, lower case, each once (empty or None: every type)."""
    if vehicle_types is None:
        return []
    if not isinstance(vehicle_types, list) or not all(isinstance(kind, str) for kind in vehicle_types):
        raise ValueError("vehicle_types must be a list of vehicle types.")
    kinds = [kind.strip().lower() for kind in vehicle_types]
    unknown = [kind for kind in kinds if kind not in VehicleType.values]
    if unknown:
        raise ValueError(f"'{unknown[0]}' is not a vehicle type; accepted: {', '.join(VehicleType.values)}.")
    return list(dict.fromkeys(kinds))


def checked_schedule(schedule) -> dict | None:
    if schedule is None:
        return None
    if not isinstance(schedule, dict):
        raise ValueError('schedule must be an object: {"days": [0-6], "from": "HH:MM", "to": "HH:MM", "tz": "..."}.')
    unknown = sorted(set(schedule) - set(SCHEDULE_KEYS))
    if unknown:
        raise ValueError(f"schedule has no field '{unknown[0]}'; its fields are {', '.join(SCHEDULE_KEYS)}.")
    missing = [key for key in ("days", "from", "to") if key not in schedule]
    if missing:
        raise ValueError(f"schedule needs '{missing[0]}'.")
    days = schedule["days"]
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6 for day in days)
    ):
        raise ValueError("schedule days must be a non-empty list of days 0-6 (0 = Monday).")
    for key in ("from", "to"):
        if not isinstance(schedule[key], str) or not _CLOCK_TIME.fullmatch(schedule[key]):
            raise ValueError(f"schedule '{key}' must be a time of day as HH:MM (00:00 to 23:59).")
    if schedule["from"] == schedule["to"]:
        raise ValueError("schedule 'from' and 'to' must differ (leave the schedule out to watch at every hour).")
    tz = schedule.get("tz", "UTC")
    if not isinstance(tz, str) or not _is_time_zone(tz):
        raise ValueError(f"schedule tz '{tz}' is not an IANA time zone name such as Europe/Istanbul.")
    return {"days": sorted(set(days)), "from": schedule["from"], "to": schedule["to"], "tz": tz}


def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
