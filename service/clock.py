"""Time as a dependency: production reads the system clock, tests move a fake one."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol

from service.common import utcnow


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


class FakeClock:
    """A clock that only moves when told to, so a whole simulated day runs in seconds."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **kwargs: float) -> datetime:
        with self._lock:
            self._now += timedelta(**kwargs)
            return self._now

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = value


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> None:
    """Tests and the demo swap the process clock; everything reads it through get_clock()."""
    global _clock
    _clock = clock
