"""One-time password reset codes: an admin issues one for a user who forgot their password;
the user sets a new password with it.

The code is a keyed hash (HMAC-SHA-256 with the service's secret key) of the user, their
token version and the ten minutes it was issued in, cut to 12 symbols (59 bits). Nothing is
stored: a copy of the database reveals no code, and the rules follow from the token version,
which every new password, logout, deactivation, new role and new code raises:

- it is shown once, to the admin who issued it, and can be recomputed only with the key;
- it works once: setting the password raises the version, so the same code no longer fits;
- issuing a new one voids the older ones (the version is raised first), and ends every
  session and token of the user, as an admin resetting a leaked password wants;
- it expires ``RESET_VALID_FOR`` after the start of its ten minutes;
- a wrong code counts as a failed login for that account and address (the login
  throttle), so codes cannot be guessed.

Issuing and using are audited; the code itself never is.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from service.audit.service import Actor, record
from service.auth import throttle
from service.auth.models import User
from service.auth.security import hash_password
from service.auth.service import check_password, get_user, get_user_by_email, revoke_sessions
from service.config import Settings
from service.errors import Invalid

RESET_VALID_FOR = timedelta(hours=24)
_BUCKET = timedelta(minutes=10)
# No 0/O, 1/I/L: the code may be read out over the phone. 12 of 31 symbols: 59 bits.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_GROUPS, _GROUP_LENGTH = 3, 4
_LENGTH = _GROUPS * _GROUP_LENGTH
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


class ResetRefused(Invalid):
    """The login, the code, or both are wrong, the code has expired or was used already.

    One error for all of these, as for a wrong password: it does not tell a guesser which
    part was right."""

    def __init__(self) -> None:
        super().__init__("the reset code is wrong, expired or already used", field="code")


class ResetThrottled(Invalid):
    """Too many wrong codes or logins: wait ``seconds``."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many failed attempts: try again in {seconds} seconds", field="code")
        self.seconds = seconds


def _group(symbols: str) -> str:
    return "-".join(symbols[i : i + _GROUP_LENGTH] for i in range(0, len(symbols), _GROUP_LENGTH))


def normalize_code(code: str) -> str:
    """What the user typed, as issued: case, spaces and dashes do not matter."""
    return _group("".join(ch for ch in code.upper() if ch.isalnum()))


def _bucket(now: datetime) -> int:
    return int((now - _EPOCH) / _BUCKET)


def _bucket_start(bucket: int) -> datetime:
    return _EPOCH + bucket * _BUCKET


def reset_code(settings: Settings, user_id: uuid.UUID, version: int, bucket: int) -> str:
    """The code of a user at a token version, issued in a ten-minute bucket."""
    message = f"password-reset|{user_id}|{version}|{bucket}".encode()
    digest = hmac.new(settings.secret_key.encode(), message, hashlib.sha256).digest()
    number = int.from_bytes(digest, "big")
    symbols = []
    for _ in range(_LENGTH):
        number, index = divmod(number, len(_ALPHABET))
        symbols.append(_ALPHABET[index])
    return _group("".join(symbols))


def issue_reset(
    *,
    session: Session,
    settings: Settings,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    actor: Actor,
    now: datetime,
) -> tuple[str, datetime]:
    """A new code for a user of the organization, and when it expires. Older codes are
    voided and the user's sessions end."""
    user = get_user(session=session, organization_id=organization_id, user_id=user_id)
    revoke_sessions(user)
    session.add(user)
    bucket = _bucket(now)
    code = reset_code(settings, user.id, user.token_version, bucket)
    expires = _bucket_start(bucket) + RESET_VALID_FOR
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="issue_reset",
        entity_type="user",
        entity_id=user.id,
        detail={"expires_at": expires.isoformat()},
    )
    return code, expires


def code_fits(settings: Settings, user: User, code: str, now: datetime) -> bool:
    """Whether ``code`` is the user's current, unexpired code."""
    typed = normalize_code(code)
    if len(typed) != _LENGTH + _GROUPS - 1:
        return False
    newest = _bucket(now)
    oldest = _bucket(now - RESET_VALID_FOR)
    fits = False
    for bucket in range(oldest, newest + 1):
        if _bucket_start(bucket) + RESET_VALID_FOR <= now:
            continue
        expected = reset_code(settings, user.id, user.token_version, bucket)
        # Compare every candidate, so the time taken says nothing about which one fit.
        fits = hmac.compare_digest(expected, typed) or fits
    return fits


def use_reset(
    *,
    session: Session,
    settings: Settings,
    login: str,
    code: str,
    password: str,
    address: str | None,
    now: datetime,
) -> User:
    """Set a new password with a code. Raises ``ResetThrottled``, ``ResetRefused`` (the
    failure is counted and committed here) or ``WeakPassword`` (the code stays usable)."""
    limits = throttle.limits_for(settings, login=login, address=address)
    wait = throttle.retry_after(session, limits, now)
    if wait:
        raise ResetThrottled(wait)
    user = get_user_by_email(session=session, email=login)
    if user is None or not user.is_active or not code_fits(settings, user, code, now):
        throttle.record_failure(session, limits, now)
        session.commit()
        raise ResetRefused
    check_password(
        session=session,
        password=password,
        email=user.email,
        full_name=user.full_name,
        organization_id=user.organization_id,
    )
    throttle.record_success(session, limits)
    user.hashed_password = hash_password(password)
    revoke_sessions(user)  # which also uses up the code
    session.add(user)
    record(
        session=session,
        organization_id=user.organization_id,
        actor=Actor(label=f"{user.full_name} <{user.email}>", user_id=user.id),
        action="use_reset",
        entity_type="user",
        entity_id=user.id,
        fields=["password"],
    )
    return user
