"""The provider for running without a Twilio account: it records instead of sending.

It is the embedded default, so a council can try Mimamori, and tests and ``mimamori
demo`` can run end to end, without paying for or leaking a single message. SIDs look
like Twilio's so that everything downstream (attempt rows, status webhooks simulated
with ``mimamori simulate``) treats them the same.

It answers the dispatcher's reconciliation questions (``sent_to``) as Twilio's list
resources would, from its memory: it knows everything it recorded since it was made and
nothing before, so a row claimed before that is "cannot say", never "not sent".
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from service.clock import get_clock
from service.config import Settings
from service.privacy import mask_phone
from service.telephony.channel import ReconcileUnavailable, Sender, SendResult, SentRecord

logger = logging.getLogger(__name__)

QUEUED = "queued"


@dataclass(frozen=True, slots=True)
class ConsoleRecord:
    """One message or call that would have gone out."""

    kind: Literal["sms", "call"]
    sid: str
    to: str
    status_callback: str
    body: str | None = None
    twiml_url: str | None = None
    # The organization's own sender it would have gone from (None: the installation's).
    sender: Sender | None = None
    # The service's clock, as the outbox's own times are: a simulated day stays consistent.
    created_at: datetime = field(default_factory=lambda: get_clock().now())


def fake_sid(prefix: str) -> str:
    """A SID in Twilio's shape: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


class ConsoleProvider:
    """Keeps what would be sent in memory and logs it without personal data.

    The phone number is masked and the body never reaches INFO logs: a check-in text
    names the resident's situation, and logs travel further than the database.
    """

    name = "console"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[ConsoleRecord] = []
        self.started_at = get_clock().now()

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleProvider:
        return cls()

    @property
    def sent(self) -> list[ConsoleRecord]:
        """A copy, so a reader never sees the list change under it."""
        with self._lock:
            return list(self._sent)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    async def send_sms(
        self, *, to: str, body: str, status_callback: str, sender: Sender | None = None
    ) -> SendResult:
        record = ConsoleRecord(
            kind="sms",
            sid=fake_sid("SM"),
            to=to,
            body=body,
            status_callback=status_callback,
            sender=sender,
        )
        self._record(record)
        logger.info("console: would send SMS %s to %s", record.sid, mask_phone(to))
        logger.debug("console: SMS %s body has %d characters", record.sid, len(body))
        return SendResult(sid=record.sid, status=QUEUED)

    async def place_call(
        self, *, to: str, twiml_url: str, status_callback: str, sender: Sender | None = None
    ) -> SendResult:
        record = ConsoleRecord(
            kind="call",
            sid=fake_sid("CA"),
            to=to,
            twiml_url=twiml_url,
            status_callback=status_callback,
            sender=sender,
        )
        self._record(record)
        logger.info("console: would place call %s to %s", record.sid, mask_phone(to))
        return SendResult(sid=record.sid, status=QUEUED)

    async def sent_to(
        self, *, channel: str, to: str, since: datetime, senders: Collection[str] = ()
    ) -> list[SentRecord]:
        if since < self.started_at:
            raise ReconcileUnavailable("the console keeps no record from before it started")
        kind = "sms" if channel == "sms" else "call"
        with self._lock:
            found = [r for r in self._sent if r.kind == kind and r.to == to]
        return [
            SentRecord(sid=r.sid, status=QUEUED, to=r.to, created_at=r.created_at, body=r.body)
            for r in reversed(found)
            if r.created_at >= since
        ]

    async def aclose(self) -> None:
        return None

    def _record(self, record: ConsoleRecord) -> None:
        with self._lock:
            self._sent.append(record)
