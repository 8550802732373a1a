"""Who an organization's messages are sent as: its own number or Messaging Service.

Several organizations (councils) can share one installation, each with its own sender
numbers or Twilio Messaging Service (``registry.OrganizationSender``). Their messages and
calls go from their own sender, so that a resident's reply comes back to the number that
belongs to their organization (``routing``); one without any uses the installation's
(``MIMAMORI_TWILIO_FROM_NUMBER`` / ``MIMAMORI_TWILIO_MESSAGING_SERVICE_SID``).

The rule is ``choose_sender``, a pure function; ``SenderBook`` loads what it needs for a
batch of outbound messages, and remembers it a few seconds (the dispatcher claims many
times a second; a changed sender is used within ``SenderBook.ttl``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlmodel import Session

from service.registry.models import OrganizationSender, SenderKind
from service.telephony.channel import Sender

__all__ = ["Sender", "SenderBook", "all_sender_addresses", "choose_sender", "organization_senders"]


def choose_sender(
    channel: str,
    *,
    numbers: Sequence[str],
    messaging_service_sid: str | None,
    default: Sender,
) -> Sender:
    """The sender of an organization's outbound message: its own when it has one, so that
    the answer to it comes back to its inbox; else the installation's (``default``).

    An SMS prefers the organization's Messaging Service, then its first number; a call
    needs a number (a Messaging Service cannot place calls).
    """
    if channel == "sms":
        if messaging_service_sid:
            return Sender(messaging_service_sid=messaging_service_sid)
        if numbers:
            return Sender(from_number=numbers[0])
        return default
    if numbers:
        return Sender(from_number=numbers[0])
    return Sender(from_number=default.from_number)


def organization_senders(
    session: Session, organization_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[list[str], str | None]]:
    """``{organization: (its numbers, oldest first; its Messaging Service or None)}`` for
    those of ``organization_ids`` that have any: what ``choose_sender`` needs, in one query
    for a whole batch of outbound messages."""
    if not organization_ids:
        return {}
    rows = session.execute(
        select(
            OrganizationSender.organization_id, OrganizationSender.kind, OrganizationSender.address
        )
        .where(OrganizationSender.organization_id.in_(list(organization_ids)))  # type: ignore[attr-defined]
        .order_by(OrganizationSender.created_at, OrganizationSender.address)
    ).all()
    found: dict[uuid.UUID, tuple[list[str], str | None]] = {}
    for organization_id, kind, address in rows:
        numbers, service = found.get(organization_id, ([], None))
        if kind == SenderKind.messaging_service:
            service = address
        else:
            numbers.append(address)
        found[organization_id] = (numbers, service)
    return found


def all_sender_addresses(session: Session) -> frozenset[str]:
    """Every organization's numbers and Messaging Service SIDs: a message from any of them
    is one of ours (``TwilioProvider.sent_to``, reconciling an uncertain send)."""
    return frozenset(session.execute(select(OrganizationSender.address)).scalars())


class SenderBook:
    """The sender of each organization's messages, looked up once per ``ttl`` seconds.

    ``sender_for`` returns None for an organization without a sender of its own: the
    provider then uses the installation's. Safe to share between the dispatcher's worker
    threads."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[uuid.UUID, tuple[float, tuple[list[str], str | None] | None]] = {}

    def senders(
        self, session: Session, organization_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[list[str], str | None] | None]:
        """``{organization: (numbers, Messaging Service) or None}`` for each one asked."""
        now = time.monotonic()
        with self._lock:
            fresh = {
                org: entry[1]
                for org in organization_ids
                if (entry := self._known.get(org)) is not None and entry[0] > now
            }
        missing = [org for org in organization_ids if org not in fresh]
        if missing:
            loaded = organization_senders(session, missing)
            with self._lock:
                for org in missing:
                    fresh[org] = loaded.get(org)
                    self._known[org] = (now + self.ttl, fresh[org])
        return fresh

    def sender_for(
        self,
        senders: dict[uuid.UUID, tuple[list[str], str | None] | None],
        organization_id: uuid.UUID,
        channel: str,
        default: Sender,
    ) -> Sender | None:
        own = senders.get(organization_id)
        if own is None:
            return None
        numbers, service = own
        return choose_sender(
            channel, numbers=numbers, messaging_service_sid=service, default=default
        )
