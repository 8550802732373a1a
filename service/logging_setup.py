"""Structured JSON logs with phone numbers masked, whatever a caller passes in.

Logs travel further than the database (log shippers, support tickets, screenshots), so
they carry no personal data: phone numbers are masked to their last four digits, and
message bodies are never logged at INFO or above (callers log lengths, SIDs and masked
numbers instead).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from service.privacy import mask_phones_in_text

# Fields a caller may pass with ``extra=`` that are copied into the JSON line.
EXTRA_FIELDS = ("event", "sid", "to", "org", "kind", "status", "count")

# Libraries that log every request or every job run at INFO: useful when debugging, noise
# (one line per second, one line per message sent) in production.
CHATTY_LOGGERS = ("apscheduler", "httpx", "httpcore")


def _masked(value: Any) -> Any:
    return mask_phones_in_text(value) if isinstance(value, str) else value


ACCESS_LOGGER = "uvicorn.access"
MASKED_VALUE = "***"


def mask_query_values(target: str) -> str:
    """``/api/v1/residents?q=山田&limit=5`` becomes ``/api/v1/residents?q=***&limit=***``.

    A search for a resident puts the name in the query string; the path and the parameter
    names stay, so the line still says which request it was.
    """
    path, sep, query = target.partition("?")
    if not sep:
        return target
    masked = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        masked.append(f"{name}={MASKED_VALUE}" if eq else name)
    return f"{path}?{'&'.join(masked)}"


def _mask_access_record(record: logging.LogRecord) -> None:
    """uvicorn's access line is ``'%s - "%s %s HTTP/%s" %d'``, the third argument being
    the path with its query string."""
    args = record.args
    if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
        record.args = (*args[:2], mask_query_values(args[2]), *args[3:])
    elif "?" in str(record.msg) and not args:
        record.msg = " ".join(mask_query_values(word) for word in str(record.msg).split(" "))


class AccessQueryFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        _mask_access_record(record)
        return True


class MaskingFilter(logging.Filter):
    """Last line of defence: mask anything that looks like a phone number in every record,
    in its message, its traceback and its extra fields, before any formatter sees it; and
    the values of query strings in the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ACCESS_LOGGER:
            _mask_access_record(record)
        message = record.getMessage()
        masked = mask_phones_in_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the plain-text format is masked too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_phones_in_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_phones_in_text(record.stack_info)
        for key in EXTRA_FIELDS:
            if hasattr(record, key):
                setattr(record, key, _masked(getattr(record, key)))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_phones_in_text(record.getMessage()),
        }
        for key in EXTRA_FIELDS:
            if hasattr(record, key):
                payload[key] = _masked(getattr(record, key))
        if record.exc_info or record.exc_text:
            text = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
            payload["exc"] = mask_phones_in_text(text)
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_logs
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger(ACCESS_LOGGER)
    # On the logger too, so a handler someone adds later never sees a query value.
    if not any(isinstance(f, AccessQueryFilter) for f in access.filters):
        access.addFilter(AccessQueryFilter())
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    debugging = isinstance(numeric, int) and numeric <= logging.DEBUG
    for name in CHATTY_LOGGERS:
        # At DEBUG they speak (inherit the root level); otherwise they keep to warnings.
        logging.getLogger(name).setLevel(logging.NOTSET if debugging else logging.WARNING)
