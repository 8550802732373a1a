"""The chain of an escalation, built when it starts: the resident's assigned members by
rank, an interpreter for a call for help if one is needed (the organization's own, else one
an active partner offers for the language), then the staff on duty; and the case code a
member answers with ("A7 1"), never one another open case of theirs has, in any
organization."""

from __future__ import annotations

import random
import string
import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from service.escalations.models import OPEN_STATES, Alert, Escalation, EscalationReason
from service.partners.interpreters import Candidate, choose_interpreter, offered_candidates
from service.registry.models import Assignment, Member, MemberKind, Organization, Resident


def recipient_of(member: Member) -> dict[str, Any]:
    return {
        "member_id": str(member.id),
        "name": member.name,
        "phone": member.phone,
        "language": (member.languages or ["ja"])[0],
        "kind": member.kind,
        "phone_kind": member.phone_kind,
    }


def foreign_recipient_of(member: Member, organization: Organization) -> dict[str, Any]:
    """A partner organization's member, as a recipient: their organization's id and name
    go with them, for the timeline ("partner interpreter X (Org B)") and the audit."""
    return {
        **recipient_of(member),
        "organization_id": str(organization.id),
        "organization": organization.name,
    }


def build_chain(
    session: Session,
    resident: Resident,
    reason: EscalationReason,
    *,
    case_code: str | None = None,
    escalation_id: uuid.UUID | None = None,
) -> list[list[dict[str, Any]]]:
    """Assigned members by rank, one step each, then one step with every staff on duty.
    ``case_code``: the case's code, when the chain of an open case is built again."""
    rows = (
        session.execute(
            select(Member)
            .join(Assignment, Assignment.member_id == Member.id)
            .where(Assignment.resident_id == resident.id, Member.active.is_(True))  # type: ignore[attr-defined]
            .order_by(Assignment.rank)
        )
        .scalars()
        .all()
    )
    chain = [[recipient_of(m)] for m in rows]
    if reason == EscalationReason.needs_help and needs_interpreter(resident):
        interpreter = escalation_interpreter(
            session, resident, case_code=case_code, escalation_id=escalation_id
        )
        if interpreter is not None:
            if not chain:
                chain.append([])
            if all(r["member_id"] != interpreter["member_id"] for r in chain[0]):
                chain[0].append(interpreter)
    cache = transaction_cache(session)
    staff = cache.get(("staff", resident.organization_id))
    if staff is None:
        staff = cache[("staff", resident.organization_id)] = [
            recipient_of(m)
            for m in session.execute(
                select(Member)
                .where(
                    Member.organization_id == resident.organization_id,
                    Member.kind == MemberKind.staff_on_duty,
                    Member.active.is_(True),
                )  # type: ignore[attr-defined]
                .order_by(Member.name)
            ).scalars()
        ]
    in_chain = {r["member_id"] for step in chain for r in step}
    staff_step = [dict(r) for r in staff if r["member_id"] not in in_chain]
    if staff_step:
        chain.append(staff_step)
    return chain


def needs_interpreter(resident: Resident) -> bool:
    return bool(resident.needs_interpreter) and resident.language not in ("ja", "easy_ja")


def interpreter_for(session: Session, resident: Resident) -> Member | None:
    """A supporter or interpreter who speaks the resident's language."""
    candidates = (
        session.execute(
            select(Member)
            .where(
                Member.organization_id == resident.organization_id,
                Member.active.is_(True),  # type: ignore[attr-defined]
                Member.kind.in_([MemberKind.interpreter, MemberKind.supporter]),
            )  # type: ignore[attr-defined]
            .order_by(Member.kind, Member.name)
        )
        .scalars()
        .all()
    )
    for member in candidates:
        if resident.language in (member.languages or []):
            return member
    return None


def escalation_interpreter(
    session: Session,
    resident: Resident,
    *,
    case_code: str | None = None,
    escalation_id: uuid.UUID | None = None,
) -> dict[str, Any] | None:
    """The recipient who interprets in a call for help: the organization's own supporter
    or interpreter for the language (always first), else a member an ACTIVE partner offers
    for it now (``service.partners.interpreters``). A partner's member with another open
    case of code ``case_code`` (their "1 A7" would be ambiguous) is passed over. Only for
    escalations: a call-back task, which hands the resident's number on, never goes to a
    partner (``interpreter_for``)."""
    own = interpreter_for(session, resident)
    if own is not None:
        return recipient_of(own)
    offered = offered_candidates(session, resident.organization_id, resident.language)
    excluded: set[uuid.UUID] = set()
    if case_code is not None and offered:
        excluded |= members_with_open_code(
            session, case_code, [c.member_id for c in offered], escalation_id
        )
    chosen: Candidate | None = choose_interpreter(resident.language, [], offered, excluded=excluded)
    if chosen is None:
        return None
    member = session.get(Member, chosen.member_id)
    organization = session.get(Organization, chosen.organization_id)
    assert member is not None and organization is not None
    return foreign_recipient_of(member, organization)


def members_with_open_code(
    session: Session,
    code: str,
    member_ids: list[uuid.UUID],
    exclude: uuid.UUID | None = None,
) -> set[uuid.UUID]:
    """Of ``member_ids``, those alerted about (or holding) another open case, in any
    organization, whose code is ``code``."""
    alerted = (
        select(Alert.member_id)
        .join(Escalation, Escalation.id == Alert.escalation_id)
        .where(
            Alert.member_id.in_(member_ids),  # type: ignore[attr-defined]
            Escalation.case_code == code,
            Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
        )
    )
    held = select(Escalation.acknowledged_by).where(
        Escalation.acknowledged_by.in_(member_ids),  # type: ignore[union-attr]
        Escalation.case_code == code,
        Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
    )
    if exclude is not None:
        alerted = alerted.where(Escalation.id != exclude)
        held = held.where(Escalation.id != exclude)
    return set(session.execute(alerted).scalars()) | set(session.execute(held).scalars())


def transaction_cache(session: Session) -> dict[Any, Any]:
    """What one unit of work already knows (the staff on duty, the case codes in use, the
    members it alerted), kept for the rest of the session's current transaction: a sweep
    that opens hundreds of escalations in one batch reads them once, not once per
    escalation. A new transaction starts with an empty cache."""
    transaction = session.get_transaction()
    held = session.info.get("escalations.cache")
    if held is None or held[0] is not transaction:
        held = session.info["escalations.cache"] = (transaction, {})
    return held[1]


def new_case_code(
    session: Session,
    organization_id: uuid.UUID,
    chain: list[list[dict[str, Any]]] | None = None,
) -> str:
    """A code no open case of the organization has, nor any open case of another
    organization that alerted one of its members (a partner's case, through a shared
    interpreter), nor any open case of a partner's member in ``chain``: a member's "1 A7"
    always names one case."""
    cache = transaction_cache(session)
    used: set[str] | None = cache.get(("case_codes", organization_id))
    if used is None:
        used = cache[("case_codes", organization_id)] = set(
            session.execute(
                select(Escalation.case_code).where(
                    Escalation.organization_id == organization_id,
                    Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
                )
            ).scalars()
        ) | set(
            session.execute(
                select(Escalation.case_code)
                .join(Alert, Alert.escalation_id == Escalation.id)
                .join(Member, Member.id == Alert.member_id)
                .where(
                    Member.organization_id == organization_id,
                    Escalation.organization_id != organization_id,
                    Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
                )
            ).scalars()
        )
    foreign = [
        uuid.UUID(r["member_id"]) for step in chain or [] for r in step if r.get("organization_id")
    ]
    taken = _codes_of_members(session, foreign) if foreign else set()
    code = free_code(used | taken)
    used.add(code)
    return code


def _codes_of_members(session: Session, member_ids: list[uuid.UUID]) -> set[str]:
    """The codes of the open cases, in any organization, these members were alerted about
    or hold, under any of their records (one person registered with several organizations
    has one phone: their reply names a code, not a record)."""
    phones = select(Member.phone).where(Member.id.in_(member_ids))  # type: ignore[attr-defined]
    member_ids = list(
        session.execute(select(Member.id).where(Member.phone.in_(phones))).scalars()  # type: ignore[attr-defined]
    )
    alerted = (
        select(Escalation.case_code)
        .join(Alert, Alert.escalation_id == Escalation.id)
        .where(
            Alert.member_id.in_(member_ids),  # type: ignore[attr-defined]
            Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
        )
    )
    held = select(Escalation.case_code).where(
        Escalation.acknowledged_by.in_(member_ids),  # type: ignore[union-attr]
        Escalation.state.in_(OPEN_STATES),  # type: ignore[attr-defined]
    )
    return set(session.execute(alerted).scalars()) | set(session.execute(held).scalars())


def free_code(used: set[str]) -> str:
    """A letter and a number a member can type back ("A7 1"): short (1–99) while fewer than
    a few thousand cases are open, then up to 999. Only past 25,974 open cases would a code
    be one a member cannot answer with; staff still can, from the board."""
    for _ in range(64):
        code = f"{random.choice(string.ascii_uppercase)}{random.randint(1, 99)}"
        if code not in used:
            return code
    for top in (99, 999):
        free = [
            code
            for letter in string.ascii_uppercase
            for number in range(1, top + 1)
            if (code := f"{letter}{number}") not in used
        ]
        if free:
            return random.choice(free)
    return uuid.uuid4().hex[:6].upper()
