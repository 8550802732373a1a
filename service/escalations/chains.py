"""The chain of an escalation, built when it starts: the resident's assigned members by
rank, an interpreter for a call for help if one is needed, then the staff on duty; and the
case code a member answers with ("A7 1")."""

from __future__ import annotations

import random
import string
import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from service.escalations.models import OPEN_STATES, Escalation, EscalationReason
from service.registry.models import Assignment, Member, MemberKind, Resident


def recipient_of(member: Member) -> dict[str, Any]:
    return {
        "member_id": str(member.id),
        "name": member.name,
        "phone": member.phone,
        "language": (member.languages or ["ja"])[0],
        "kind": member.kind,
        "phone_kind": member.phone_kind,
    }


def build_chain(
    session: Session, resident: Resident, reason: EscalationReason
) -> list[list[dict[str, Any]]]:
    """Assigned members by rank, one step each, then one step with every staff on duty."""
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
        interpreter = interpreter_for(session, resident)
        if interpreter is not None:
            if not chain:
                chain.append([])
            if all(r["member_id"] != str(interpreter.id) for r in chain[0]):
                chain[0].append(recipient_of(interpreter))
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


def new_case_code(session: Session, organization_id: uuid.UUID) -> str:
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
        )
    code = free_code(used)
    used.add(code)
    return code


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
