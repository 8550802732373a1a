"""The channel interface itself: what a provider sends and answers, and nothing else.

Its own module so that the implementations (``console.py``, ``twilio_provider.py``) and the
registry that chooses among them (``provider.py``) do not import each other.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Sender:
    """Who a message is sent as: Twilio's ``From`` number or ``MessagingServiceSid``
    (an organization's own, ``senders.choose_sender``)."""

    from_number: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the dispatcher stores on the attempt: the SID makes a resend impossible."""

    sid: str
    status: str


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One message or call in the provider's own record (Twilio's list resources), as the
    reconciliation of an uncertain send reads it."""

    sid: str
    status: str
    to: str
    created_at: datetime | None
    body: str | None = None


class ReconcileUnavailable(Exception):
    """The provider's record cannot be read now (Twilio down, or a console that did not
    exist when the row was claimed): the row stays uncertain and is asked about again."""


class TelephonyProvider(Protocol):
    """A channel that can send an SMS and place a call.

    Implementations raise ``TransientSendError`` or ``PermanentSendError`` (see
    ``errors.py``) and never retry by themselves.
    """

    name: str

    async def send_sms(
        self, *, to: str, body: str, status_callback: str, sender: Sender | None = None
    ) -> SendResult:
        """``sender``: the organization's own (``senders.choose_sender``); None: the
        installation's."""
        ...

    async def place_call(
        self, *, to: str, twiml_url: str, status_callback: str, sender: Sender | None = None
    ) -> SendResult: ...

    async def sent_to(
        self, *, channel: str, to: str, since: datetime, senders: Collection[str] = ()
    ) -> list[SentRecord]:
        """What the provider has sent to ``to`` (an SMS or a call, by ``channel``) since
        about ``since``, newest first, from the installation's sender or any of ``senders``
        (the organizations' own numbers and Messaging Services). Raises
        ``ReconcileUnavailable`` when it cannot say."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections when the process shuts down."""
        ...
