"""Classification of send failures: what may be retried, and what may be a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from service.telephony.errors import (
    PermanentSendError,
    TransientSendError,
    classify_http_error,
    classify_transport_error,
    classify_twilio_error_code,
    parse_retry_after,
)


@pytest.mark.parametrize(
    "code", [21211, 21610, 21614, 21408, 30003, 30004, 30005, 30006, 30007, 30008]
)
def test_known_dead_end_codes_are_permanent(code: int) -> None:
    assert classify_twilio_error_code(code) == "permanent"


def test_status_callback_error_codes_arrive_as_strings() -> None:
    assert classify_twilio_error_code("30006") == "permanent"
    assert classify_twilio_error_code("") == "unknown"
    assert classify_twilio_error_code(None) == "unknown"
    assert classify_twilio_error_code("not-a-code") == "unknown"


@pytest.mark.parametrize("code", [20429, 30001])
def test_rate_and_queue_codes_are_transient(code: int) -> None:
    assert classify_twilio_error_code(code) == "transient"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_are_permanent(status: int) -> None:
    error = classify_http_error(status=status, code=None, message="bad")
    assert isinstance(error, PermanentSendError)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_rate_limit_and_server_errors_are_transient_and_not_ambiguous(status: int) -> None:
    error = classify_http_error(status=status, code=None, message="later", retry_after=3.0)
    assert isinstance(error, TransientSendError)
    assert error.ambiguous is False
    assert error.retry_after == 3.0


def test_permanent_code_wins_over_status() -> None:
    error = classify_http_error(status=400, code=21610, message="unsubscribed")
    assert isinstance(error, PermanentSendError)
    assert error.code == 21610


@pytest.mark.parametrize(
    ("error", "ambiguous"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.WriteTimeout, False),
        (httpx.WriteError, False),
        (httpx.ReadTimeout, True),
        (httpx.ReadError, True),
        (httpx.RemoteProtocolError, True),
    ],
)
def test_only_failures_after_the_request_was_written_are_ambiguous(
    error: type[httpx.TransportError], ambiguous: bool
) -> None:
    classified = classify_transport_error(error("boom"))
    assert isinstance(classified, TransientSendError)
    assert classified.ambiguous is ambiguous


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


def test_errors_keep_their_fields_positionally() -> None:
    transient = TransientSendError("timeout", True, 2.0)
    assert (transient.reason, transient.ambiguous, transient.retry_after) == ("timeout", True, 2.0)
    permanent = PermanentSendError(21211, "invalid number")
    assert (permanent.code, permanent.reason) == (21211, "invalid number")
