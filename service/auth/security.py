"""Password hashing (argon2) and signed bearer tokens (JWT, HS256)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.common import utcnow
from service.config import Settings

_hasher = PasswordHasher()
ALGORITHM = "HS256"
# Verifying against this keeps the time for an unknown login close to a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


# Every claim a token must carry: without "exp" a stolen token would never end, and without
# "ver" (the user's token_version when it was issued) it could not be revoked.
REQUIRED_CLAIMS = ["sub", "org", "iat", "exp", "ver"]


def create_access_token(
    *, settings: Settings, user_id: uuid.UUID, org_id: uuid.UUID, version: int
) -> str:
    now = utcnow()
    payload = {
        "sub": str(user_id),
        "org": str(org_id),
        "ver": version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=settings.access_token_minutes)).timestamp()),
    }
    return jwt.encode(payload, settings.secret_key, algorithm=ALGORITHM)


def decode_access_token(*, settings: Settings, token: str) -> dict[str, object] | None:
    """The token's claims, or None for a bad signature, an expired token or a missing claim."""
    try:
        return jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS, "verify_exp": True, "verify_iat": True},
        )
    except jwt.PyJWTError:
        return None
