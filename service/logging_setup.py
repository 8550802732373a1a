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


class MaskingFilter(logging.Filter):
    """Last line of defence: mask anything that looks like a phone number in every record,
    in its message, its traceback and its extra fields, before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
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
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    debugging = isinstance(numeric, int) and numeric <= logging.DEBUG
    for name in CHATTY_LOGGERS:
        # At DEBUG they speak (inherit the root level); otherwise they keep to warnings.
        logging.getLogger(name).setLevel(logging.NOTSET if debugging else logging.WARNING)
