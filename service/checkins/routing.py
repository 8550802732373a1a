"""Which organization an inbound SMS belongs to, and claiming those that belong to none yet.

Several organizations (councils) can share one installation, each with its own sender
numbers or Twilio Messaging Service (``registry.OrganizationSender``). A resident's or a
member's message is theirs: it goes to their organization, as before. A message from a
number in no registry belongs to the organization that owns the number it was sent to
(``To``), or the Messaging Service it came through. When no single organization can be
identified, it is stored *unrouted* (no ``organization_id``) and shows in every
organization's inbox, with nothing of any organization beside it, until one claims it.
Nothing is stored for nobody, and the sender is always answered: in Japanese and English,
since neither their language nor, perhaps, their organization is known.

The rule is ``decide_organization``, a pure function; the rest loads and applies.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlmodel import Session, SQLModel

from i18n.classifier import ReplyKind
from i18n.messages import RESIDENT_REPLY_RECEIVED
from i18n.render import render
from service.audit.service import Actor, record
from service.checkins.models import StaffTask, TaskKind
from service.errors import Conflict, NotFound
from service.registry.models import Organization, OrganizationSender
from service.telephony.models import InboundMessage

# Who outbound messages are sent as lives in ``senders``; still importable from here.
from service.telephony.senders import (  # noqa: F401
    Sender,
    choose_sender,
    organization_senders,
)
from service.texts import N_

#: The languages a stranger is answered in: the two every sender can be expected to read
#: one of, in Japan.
STRANGER_LANGUAGES: tuple[str, ...] = ("ja", "en")


# --- The rule -----------------------------------------------------------------------------------


def decide_organization(
    *,
    to_owner: uuid.UUID | None,
    service_owner: uuid.UUID | None,
    sender_organizations: Collection[uuid.UUID],
    only_organization: uuid.UUID | None,
) -> uuid.UUID | None:
    """The organization a message from an unknown sender belongs to, or None: unrouted.

    - The owner of the number it was sent to, else of the Messaging Service it came
      through (a number is the more precise of the two).
    - Else the one organization that knows the sender (the sender known to several, or
      to none, does not say whose it is).
    - Else the installation's only organization.
    """
    if to_owner is not None:
        return to_owner
    if service_owner is not None:
        return service_owner
    if len(set(sender_organizations)) == 1:
        return next(iter(sender_organizations))
    return only_organization


def is_urgent(classification: str | None) -> bool:
    """A stranger's cry for help ("助けて", "倒れました") stands out in the inbox."""
    return classification == ReplyKind.HELP.value


def stranger_answer() -> str:
    """The answer to a sender in no registry: received, and call 119 in an emergency, in
    Japanese and in English (their language is not known)."""
    return "\n".join(render(RESIDENT_REPLY_RECEIVED, code) for code in STRANGER_LANGUAGES)


# --- Loading ------------------------------------------------------------------------------------


def sender_owners(session: Session, addresses: Collection[str]) -> dict[str, uuid.UUID]:
    """``{number or Messaging Service SID: organization}`` for those any organization owns."""
    wanted = [a for a in addresses if a]
    if not wanted:
        return {}
    rows = session.execute(
        select(OrganizationSender.address, OrganizationSender.organization_id).where(
            OrganizationSender.address.in_(wanted)  # type: ignore[attr-defined]
        )
    ).all()
    return {address: organization_id for address, organization_id in rows}


def _messaging_service(params: dict[str, str]) -> str:
    sid = (params.get("MessagingServiceSid") or "").strip()
    return "MG" + sid[2:].lower() if sid[:2].upper() == "MG" else ""


def organization_for_stranger(
    session: Session, *, to_phone: str | None, params: dict[str, str]
) -> uuid.UUID | None:
    """The organization of an SMS from a number in no registry (``decide_organization``)."""
    service_sid = _messaging_service(params)
    owners = sender_owners(session, [to_phone or "", service_sid])
    organizations = list(session.execute(select(Organization.id).limit(2)).scalars())
    return decide_organization(
        to_owner=owners.get(to_phone or ""),
        service_owner=owners.get(service_sid),
        sender_organizations=(),
        only_organization=organizations[0] if len(organizations) == 1 else None,
    )


def recent_unrouted_count(session: Session, phone: str, now: datetime) -> int:
    """Unrouted messages from this number in the past hour. Each was answered (up to the
    per-recipient cap), and an answer to nobody's organization has no outbox row to count:
    these stand for them, so that an auto-responder cannot start a loop."""
    return session.execute(
        select(func.count())
        .select_from(InboundMessage)
        .where(
            InboundMessage.from_phone == phone,
            InboundMessage.organization_id.is_(None),  # type: ignore[union-attr]
            InboundMessage.received_at >= now - timedelta(hours=1),  # type: ignore[operator]
        )
    ).scalar_one()


# --- Claiming -----------------------------------------------------------------------------------


def unrouted_tasks_filter(organization_id: uuid.UUID) -> object:
    """The open tasks an organization's inbox shows: its own, and every unrouted message."""
    return or_(
        StaffTask.organization_id == organization_id,
        (StaffTask.organization_id.is_(None)) & (StaffTask.kind == TaskKind.unknown_sender),  # type: ignore[union-attr]
    )


def claim(
    session: Session,
    *,
    organization_id: uuid.UUID,
    task_id: uuid.UUID,
    actor: Actor,
    now: datetime,
) -> StaffTask:
    """An organization takes an unrouted message: from now on it is that organization's
    alone (its inbox, its translations, its answers), and it leaves every other inbox.

    One conditional UPDATE decides a race: the second claim finds the message taken and
    is refused (409). A task the caller cannot see is not found (404), as anywhere else.
    """
    task = session.get(StaffTask, task_id)
    inbound = session.get(InboundMessage, task.inbound_id) if task and task.inbound_id else None
    if task is None or inbound is None or task.kind != TaskKind.unknown_sender:
        raise NotFound(N_("task not found"))
    if inbound.organization_id is not None:
        if inbound.claimed_at is None:
            # Routed when it arrived: it was never in anyone else's inbox.
            raise NotFound(N_("task not found"))
        if inbound.organization_id == organization_id:
            raise Conflict(N_("your organization has already claimed this message"))
        raise Conflict(N_("another organization has already claimed this message"))
    taken = session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.id == inbound.id,  # type: ignore[arg-type]
            InboundMessage.organization_id.is_(None),  # type: ignore[union-attr]
        )
        .values(organization_id=organization_id, claimed_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(N_("another organization has already claimed this message"))
    session.execute(
        update(StaffTask)
        .where(
            StaffTask.inbound_id == inbound.id,  # type: ignore[arg-type]
            StaffTask.organization_id.is_(None),  # type: ignore[union-attr]
        )
        .values(organization_id=organization_id)
    )
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="claim",
        entity_type="inbound_message",
        entity_id=inbound.id,
        detail={"task_id": str(task.id)},
    )
    session.refresh(task)
    session.refresh(inbound)
    return task


# --- Listing ------------------------------------------------------------------------------------


class UnroutedMessage(SQLModel):
    """A message no organization could be identified for, as every organization sees it."""

    task_id: uuid.UUID
    inbound_id: uuid.UUID
    received_at: datetime
    from_phone: str
    to_phone: str | None
    body: str
    urgent: bool


def unrouted_messages(session: Session, limit: int = 500) -> list[UnroutedMessage]:
    """The unrouted messages waiting for an organization, calls for help first."""
    rows = session.execute(
        select(StaffTask.id, InboundMessage)
        .join(InboundMessage, InboundMessage.id == StaffTask.inbound_id)  # type: ignore[arg-type]
        .where(
            StaffTask.organization_id.is_(None),  # type: ignore[union-attr]
            StaffTask.kind == TaskKind.unknown_sender,
            StaffTask.closed_at.is_(None),  # type: ignore[union-attr]
            InboundMessage.organization_id.is_(None),  # type: ignore[union-attr]
        )
        .order_by(StaffTask.created_at)
        .limit(limit)
    ).all()
    found = [
        UnroutedMessage(
            task_id=task_id,
            inbound_id=message.id,
            received_at=message.received_at,
            from_phone=message.from_phone,
            to_phone=message.to_phone,
            body=message.body,
            urgent=is_urgent(message.classification),
        )
        for task_id, message in rows
    ]
    return sorted(found, key=lambda m: not m.urgent)
