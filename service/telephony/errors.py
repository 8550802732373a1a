"""How a failed send is classified, so the outbox dispatcher knows whether to retry.

The provider raises exactly one classified error per failed send and never retries by
itself: retrying (backoff, jitter, attempt limits) is the dispatcher's job, because only
the dispatcher knows what the message is for and how long it may wait.

* ``PermanentSendError``: resending the same request cannot succeed (invalid number,
  unsubscribed, landline for SMS, a malformed request). The attempt fails and the
  check-in moves to its next channel or to escalation.
* ``TransientSendError``: it may succeed later (HTTP 429, 5xx, network errors,
  timeouts). ``retry_after`` carries Twilio's ``Retry-After`` when it sent one.

Ambiguous sends
---------------
``TransientSendError.ambiguous`` is True when the request may have reached Twilio but no
answer came back (read timeout, connection dropped after the request was written). Twilio
may then have created the message or call, or not. Twilio's REST API has no idempotency
key, so the dispatcher never resends such a send on its own; it reconciles it with
Twilio's own record (``reconcile.py``, the Message and Call list resources):

1. Twilio has it: its SID is stored, and it is never sent again.
2. Twilio does not: it is sent.
3. Twilio cannot be asked: it stays uncertain and is asked again. After
   ``MIMAMORI_DISPATCH_UNCERTAIN_RESEND_SECONDS`` a check-in message or an alert is sent
   again anyway (a repeated "are you all right?" costs little; a missing one delays a
   visit by a whole step); other notices are left "ambiguous" and not resent.

Every StatusCallback URL also carries the row id, so if Twilio did accept the request its
first status callback attaches the SID whatever the reconciliation is doing.

Errors raised before the request could have been complete at Twilio (connect errors and
timeouts, pool timeouts, write errors and write timeouts: Twilio cannot act on a form body
it did not fully receive) are not ambiguous and are retried normally. An HTTP 5xx is an
answer from Twilio and is treated as not ambiguous; in the rare case that a gateway error
hides a created message, its status callback still records the SID.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime
from typing import Literal

import httpx

ErrorClass = Literal["permanent", "transient", "unknown"]

# Twilio error codes after which the same request cannot succeed. 30003-30008 arrive in
# status callbacks (ErrorCode) of undelivered messages; the rest in REST error bodies.
PERMANENT_ERROR_CODES: frozenset[int] = frozenset(
    {
        21211,  # invalid 'To' phone number
        21408,  # permission to send to this region not enabled
        21610,  # recipient replied STOP (unsubscribed)
        21614,  # 'To' is not a mobile number (landline for SMS)
        30003,  # unreachable destination handset
        30004,  # message blocked
        30005,  # unknown destination handset
        30006,  # landline or unreachable carrier
        30007,  # carrier filtering
        30008,  # unknown error at the carrier
    }
)

# Codes that mean "not now" rather than "never".
TRANSIENT_ERROR_CODES: frozenset[int] = frozenset(
    {
        20429,  # too many requests
        20500,  # internal server error
        20503,  # service unavailable
        30001,  # message queue overflow
    }
)

# Errors raised before the whole request was written, so Twilio cannot have acted on it.
_NEVER_REACHED: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


class SendError(Exception):
    """Base class so the dispatcher can catch every classified failure in one clause."""

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientSendError(SendError):
    """May succeed later. See the module docstring for what ``ambiguous`` obliges."""

    def __init__(
        self, reason: str, ambiguous: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.ambiguous = ambiguous
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"TransientSendError({self.reason!r}, ambiguous={self.ambiguous}, "
            f"retry_after={self.retry_after})"
        )


class PermanentSendError(SendError):
    """Will not succeed by resending; ``code`` is Twilio's error code when it gave one."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code

    def __repr__(self) -> str:
        return f"PermanentSendError({self.code!r}, {self.reason!r})"


def classify_twilio_error_code(code: int | str | None) -> ErrorClass:
    """Classify a Twilio error code, from a REST error body or a status callback.

    Status callbacks deliver ``ErrorCode`` as a string, hence the ``str`` input.
    ``"unknown"`` leaves the decision to the caller (the HTTP status for REST errors; for
    a failed or undelivered status callback the attempt has failed either way).
    """
    if code is None or code == "":
        return "unknown"
    try:
        number = int(code)
    except (TypeError, ValueError):
        return "unknown"
    if number in PERMANENT_ERROR_CODES:
        return "permanent"
    if number in TRANSIENT_ERROR_CODES:
        return "transient"
    return "unknown"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read ``Retry-After`` as seconds; it may be a number or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def classify_http_error(
    *, status: int, code: int | None, message: str, retry_after: float | None = None
) -> SendError:
    """Classify an error answer from Twilio (it answered, so it is never ambiguous)."""
    reason = f"HTTP {status}" + (f" Twilio error {code}" if code else "") + f": {message}"
    kind = classify_twilio_error_code(code)
    if kind == "permanent":
        return PermanentSendError(code, reason)
    if kind == "transient" or status == 429 or status >= 500:
        return TransientSendError(reason, ambiguous=False, retry_after=retry_after)
    # Any other 4xx (or an unexpected 1xx/3xx): the same request will fail the same way.
    return PermanentSendError(code, reason)


def classify_transport_error(exc: httpx.TransportError) -> TransientSendError:
    """Classify a network failure; only the ambiguity differs between kinds."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return TransientSendError(reason, ambiguous=not isinstance(exc, _NEVER_REACHED))
