"""Login throttling per account and per client address, with bounded exponential lockouts.

The rule (``lockout_seconds``) is pure: the first few failures are free, then each failure
locks the key for 15 s, 30 s, 60 s, ... up to a bound (15 minutes by default). While a key is
locked, attempts are refused without looking at the password and are not counted, so an
attacker cannot push a real user's lockout further out than the bound: at worst the owner
waits one lockout. A successful login clears the account's count (not the address's, or an
attacker with one account could reset the count of the address they guess from). Counts are
forgotten a day after the last failure.

Counters live in the database (``login_throttle``) so that every API replica sees the same
ones; an increment is one atomic INSERT ... ON CONFLICT DO UPDATE. Keys are keyed hashes of
the normalised login and of the client address, so the table holds neither.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from service.auth.models import LoginThrottle
from service.common import aware
from service.config import Settings

BASE_LOCKOUT_SECONDS = 15
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Limit:
    key: str
    free_failures: int
    max_seconds: int


def lockout_seconds(failures: int, *, free_failures: int, max_seconds: int) -> int:
    """How long a key stays locked after its ``failures``-th failure in a row."""
    if failures < free_failures:
        return 0
    doublings = min(failures - free_failures, 32)
    return min(BASE_LOCKOUT_SECONDS * 2**doublings, max_seconds)


def _hashed(settings: Settings, kind: str, value: str) -> str:
    digest = hmac.new(
        settings.secret_key.encode(), f"{kind}:{value}".encode(), hashlib.sha256
    ).hexdigest()
    return f"{kind}:{digest[:48]}"


def limits_for(settings: Settings, *, login: str, address: str | None) -> list[Limit]:
    """The keys one login attempt counts against: its account, and its client address."""
    found = [
        Limit(
            _hashed(settings, "account", login.strip().lower()),
            settings.login_free_failures_per_account,
            settings.login_lockout_max_seconds,
        )
    ]
    if address:
        found.append(
            Limit(
                _hashed(settings, "address", address),
                settings.login_free_failures_per_address,
                settings.login_lockout_max_seconds,
            )
        )
    return found


def retry_after(session: Session, limits: list[Limit], now: datetime) -> int:
    """Seconds until an attempt is allowed (0: now). Whole seconds, rounded up."""
    keys = [limit.key for limit in limits]
    rows = session.exec(select(LoginThrottle).where(LoginThrottle.key.in_(keys))).all()  # type: ignore[attr-defined]
    wait = 0.0
    for row in rows:
        until = aware(row.locked_until)
        if until is not None and until > now:
            wait = max(wait, (until - now).total_seconds())
    return math.ceil(wait)


def _insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(LoginThrottle)


def record_failure(session: Session, limits: list[Limit], now: datetime) -> int:
    """Count a failure against every key; returns the longest lockout it starts (seconds)."""
    table = LoginThrottle.__table__  # type: ignore[attr-defined]
    stale = now - FORGET_AFTER
    longest = 0
    for limit in limits:
        statement = (
            _insert(session)
            .values(key=limit.key, failures=1, last_failure_at=now, locked_until=None)
            .on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "failures": sa.case(
                        (table.c.last_failure_at < stale, 1), else_=table.c.failures + 1
                    ),
                    "last_failure_at": now,
                },
            )
            .returning(table.c.failures)
        )
        failures = session.execute(statement).scalar_one()
        seconds = lockout_seconds(
            failures, free_failures=limit.free_failures, max_seconds=limit.max_seconds
        )
        if seconds:
            session.execute(
                sa.update(table)
                .where(table.c.key == limit.key)
                .values(locked_until=now + timedelta(seconds=seconds))
            )
        longest = max(longest, seconds)
    session.execute(sa.delete(table).where(table.c.last_failure_at < stale))
    return longest


def record_success(session: Session, limits: list[Limit]) -> None:
    """A right password clears the account's count (the first key), not the address's."""
    table = LoginThrottle.__table__  # type: ignore[attr-defined]
    session.execute(sa.delete(table).where(table.c.key == limits[0].key))
