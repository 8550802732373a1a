"""The check-in rules as pure functions: quiet hours, schedules and plans."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from service.checkins.models import (
    Schedule,
)
from service.registry.models import (
    Channel,
)
from service.registry.phones import PhoneKind

# --- Time helpers -------------------------------------------------------------------------------


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(now: datetime, tz: str, start: str, end: str) -> bool:
    local = now.astimezone(ZoneInfo(tz)).time()
    begin, finish = _hhmm(start), _hhmm(end)
    if begin == finish:
        return False
    if begin < finish:
        return begin <= local < finish
    return local >= begin or local < finish


def quiet_hours_end(now: datetime, tz: str, end: str) -> datetime:
    """The next moment routine rounds may send again."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), _hhmm(end), zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), _hhmm(end), zone)
    return candidate.astimezone(now.tzinfo)


def next_run_after(schedule: Schedule, after: datetime, tz: str) -> datetime:
    zone = ZoneInfo(tz)
    local = after.astimezone(zone)
    at = _hhmm(schedule.time_of_day)
    for offset in range(0, 8):
        day = local.date() + timedelta(days=offset)
        candidate = datetime.combine(day, at, zone)
        if candidate > local and day.weekday() in schedule.weekdays:
            return candidate.astimezone(after.tzinfo)
    raise ValueError("schedule has no weekdays")  # pragma: no cover - validated on input


# --- Plans ----------------------------------------------------------------------------------------


def resident_plan(
    plan: list[dict[str, Any]],
    resident_channel: str,
    phone_kind: str | None,
    phone2_kind: str | None,
) -> list[dict[str, Any]]:
    """Fit the schedule's plan to one resident: landlines and voice-preferring residents get
    calls where the plan says SMS; nobody is sent an SMS to a number that cannot take one.
    A resident who prefers SMS, or both, follows the plan as written: it already mixes the
    two (SMS, an SMS reminder, then a call), and a call stays the fallback for silence."""
    voice_only = reached_by_voice_only(resident_channel, phone_kind, phone2_kind)
    out = []
    for step in plan:
        step = dict(step)
        if step["channel"] == "sms" and voice_only:
            step["channel"] = "voice"
        out.append(step)
    return out


def reached_by_voice_only(
    resident_channel: str, phone_kind: str | None, phone2_kind: str | None
) -> bool:
    """A resident with no mobile (landlines only), or who asked to be called, is never
    sent an SMS, so nothing said to them may ask for one."""
    has_mobile = PhoneKind.mobile in (phone_kind, phone2_kind)
    return not has_mobile or resident_channel == Channel.voice
