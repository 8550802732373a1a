"""Registry operations. Every function is scoped to one organization and audits its changes."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any, TypeVar

from sqlalchemy import delete, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from i18n.names import merged_names
from service.audit.service import Actor, record
from service.common import utcnow
from service.errors import Conflict, Invalid, NotFound
from service.registry.models import (
    RESIDENT_SENSITIVE_FIELDS,
    Assignment,
    AssignmentCreate,
    AssignmentUpdate,
    Member,
    MemberCreate,
    MemberUpdate,
    Organization,
    OrganizationPublic,
    OrganizationSender,
    OrganizationUpdate,
    Resident,
    ResidentCreate,
    ResidentStatus,
    ResidentUpdate,
    SenderKind,
    Site,
    SiteCreate,
    SiteUpdate,
)
from service.registry.phones import phone_kind
from service.texts import N_, Text

M = TypeVar("M", bound=SQLModel)
MAX_PAGE = 500
RESIDENT_FLAGS = ("lives_alone", "elderly", "disability", "pregnancy", "needs_interpreter")


_NOT_FOUND = {
    "site": N_("site not found"),
    "resident": N_("resident not found"),
    "member": N_("member not found"),
    "assignment": N_("assignment not found"),
}


def _get_scoped(
    session: Session, model: type[M], organization_id: uuid.UUID, obj_id: uuid.UUID, label: str
) -> M:
    obj = session.get(model, obj_id)
    if obj is None or obj.organization_id != organization_id:  # type: ignore[attr-defined]
        raise NotFound(_NOT_FOUND.get(label) or f"{label} not found")
    return obj


def _changed_fields(obj: SQLModel, changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in changes.items() if getattr(obj, k) != v}


def _flush_or_conflict(session: Session, field: str, message: Text) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(message, field=field) from None


# --- The organization ---------------------------------------------------------------------------


def update_organization(
    *, session: Session, organization_id: uuid.UUID, data: OrganizationUpdate, actor: Actor
) -> Organization:
    """Change the escalation windows (new cases take them) and the names per language
    (merged: a ``null`` name removes that language's). Audited with the values before."""
    org = session.get(Organization, organization_id)
    if org is None:
        raise NotFound(N_("organization not found"))
    changes = data.model_dump(exclude_unset=True)
    senders = {k: changes.pop(k) for k in _SENDER_FIELDS if k in changes}
    if "sender_numbers" in senders and senders["sender_numbers"] is None:
        raise Invalid(
            N_("sender_numbers cannot be null; [] removes them"), field="sender_numbers"
        )
    for name, value in changes.items():
        if value is None:
            raise Invalid(N_("%(field)s cannot be null", field=name), field=name)
    if "names" in changes:
        changes["names"] = merged_names(org.names, changes["names"])
    changes = _changed_fields(org, changes)
    before: dict[str, Any] = {name: getattr(org, name) for name in changes}
    if changes:
        org.sqlmodel_update(changes)
        session.add(org)
    changed = list(changes)
    if senders:
        old = organization_senders(session, org.id)
        new = _set_senders(session, org, old, senders)
        for name in _SENDER_FIELDS:
            if _comparable(old[name]) != _comparable(new[name]):
                before[name] = old[name]
                changed.append(name)
    if changed:
        record(
            session=session,
            organization_id=org.id,
            actor=actor,
            action="update",
            entity_type="organization",
            entity_id=org.id,
            fields=changed,
            detail={"before": before},
        )
    return org


# --- The organization's sender numbers ------------------------------------------------------

_SENDER_FIELDS = ("sender_numbers", "messaging_service_sid")


def organization_senders(session: Session, organization_id: uuid.UUID) -> dict[str, Any]:
    """``{"sender_numbers": [...], "messaging_service_sid": ... or None}``."""
    rows = session.exec(
        select(OrganizationSender)
        .where(OrganizationSender.organization_id == organization_id)
        .order_by(col(OrganizationSender.created_at), col(OrganizationSender.address))
    ).all()
    numbers = [r.address for r in rows if r.kind == SenderKind.number]
    services = [r.address for r in rows if r.kind == SenderKind.messaging_service]
    return {"sender_numbers": numbers, "messaging_service_sid": services[0] if services else None}


def _comparable(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


def organization_public(session: Session, org: Organization) -> OrganizationPublic:
    """The organization as the API shows it, with its sender numbers."""
    return OrganizationPublic.model_validate(org, update=organization_senders(session, org.id))


def _set_senders(
    session: Session, org: Organization, old: dict[str, Any], wanted: dict[str, Any]
) -> dict[str, Any]:
    """Replace the organization's numbers and/or Messaging Service. A number or service of
    another organization is refused, naming it; the unique index settles a race."""
    new = {**old, **wanted}
    addresses = {n: SenderKind.number for n in new["sender_numbers"]}
    if new["messaging_service_sid"]:
        addresses[new["messaging_service_sid"]] = SenderKind.messaging_service
    taken = session.exec(
        select(OrganizationSender.address).where(
            col(OrganizationSender.address).in_(list(addresses)),
            OrganizationSender.organization_id != org.id,
        )
    ).all()
    if taken:
        field = (
            "messaging_service_sid"
            if addresses[taken[0]] == SenderKind.messaging_service
            else "sender_numbers"
        )
        raise Invalid(
            N_("%(sender)s already belongs to another organization", sender=taken[0]),
            field=field,
        )
    session.execute(
        delete(OrganizationSender).where(
            col(OrganizationSender.organization_id) == org.id,
            col(OrganizationSender.address).not_in(list(addresses)),
        )
    )
    kept = set(
        session.exec(
            select(OrganizationSender.address).where(OrganizationSender.organization_id == org.id)
        ).all()
    )
    now = utcnow()
    for address, kind in addresses.items():
        if address not in kept:
            session.add(
                OrganizationSender(
                    organization_id=org.id, kind=kind, address=address, created_at=now
                )
            )
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Invalid(
            N_("a sender number or Messaging Service was just given to another organization"),
            field="sender_numbers",
        ) from None
    return new


# --- Sites ------------------------------------------------------------------------------------


def normalize_site_name(name: str) -> str:
    """Full-width and half-width spellings of one site name are the same site."""
    return " ".join(unicodedata.normalize("NFKC", name).split())


def create_site(
    *, session: Session, organization_id: uuid.UUID, data: SiteCreate, actor: Actor
) -> Site:
    site = Site.model_validate(
        data,
        update={
            "organization_id": organization_id,
            "name": normalize_site_name(data.name),
            "names": merged_names({}, data.names or {}),
        },
    )
    if find_site_by_name(session=session, organization_id=organization_id, name=site.name):
        raise Conflict(
            N_("a site named %(name)s already exists", name=repr(site.name)), field="name"
        )
    session.add(site)
    session.flush()
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="create",
        entity_type="site",
        entity_id=site.id,
        fields=data.model_fields_set,
    )
    return site


def find_site_by_name(*, session: Session, organization_id: uuid.UUID, name: str) -> Site | None:
    return session.exec(
        select(Site).where(
            Site.organization_id == organization_id, Site.name == normalize_site_name(name)
        )
    ).first()


def get_site(*, session: Session, organization_id: uuid.UUID, site_id: uuid.UUID) -> Site:
    return _get_scoped(session, Site, organization_id, site_id, "site")


def list_sites(*, session: Session, organization_id: uuid.UUID) -> list[Site]:
    return list(
        session.exec(
            select(Site).where(Site.organization_id == organization_id).order_by(Site.name)
        ).all()
    )


def update_site(
    *,
    session: Session,
    organization_id: uuid.UUID,
    site_id: uuid.UUID,
    data: SiteUpdate,
    actor: Actor,
) -> Site:
    site = get_site(session=session, organization_id=organization_id, site_id=site_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes:
        if changes["name"] is None:
            raise Invalid(N_("a site needs a name"), field="name")
        changes["name"] = normalize_site_name(changes["name"])
        other = find_site_by_name(
            session=session, organization_id=organization_id, name=changes["name"]
        )
        if other is not None and other.id != site.id:
            raise Conflict(
                N_("a site named %(name)s already exists", name=repr(changes["name"])),
                field="name",
            )
    if "names" in changes:
        if changes["names"] is None:
            raise Invalid(
                N_("names cannot be null; give {language: null} to remove one"), field="names"
            )
        changes["names"] = merged_names(site.names, changes["names"])
    changes = _changed_fields(site, changes)
    if changes:
        site.sqlmodel_update(changes)
        site.updated_at = utcnow()
        session.add(site)
        record(
            session=session,
            organization_id=organization_id,
            actor=actor,
            action="update",
            entity_type="site",
            entity_id=site.id,
            fields=changes.keys(),
        )
    return site


def delete_site(
    *, session: Session, organization_id: uuid.UUID, site_id: uuid.UUID, actor: Actor
) -> None:
    site = get_site(session=session, organization_id=organization_id, site_id=site_id)
    in_use = session.exec(
        select(func.count()).select_from(Resident).where(Resident.site_id == site.id)
    ).one()
    if in_use:
        raise Conflict(
            N_("%(count)s residents still live at this site; move them first", count=in_use),
            field="site_id",
        )
    session.delete(site)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="delete",
        entity_type="site",
        entity_id=site.id,
    )


# --- Residents --------------------------------------------------------------------------------


def _check_site(session: Session, organization_id: uuid.UUID, site_id: uuid.UUID | None) -> None:
    if site_id is None:
        return
    site = session.get(Site, site_id)
    if site is None or site.organization_id != organization_id:
        raise Invalid(N_("no such site"), field="site_id")


def _check_external_id(
    session: Session,
    model: type[Resident] | type[Member],
    organization_id: uuid.UUID,
    external_id: str | None,
    own_id: uuid.UUID | None = None,
) -> None:
    if external_id is None:
        return
    existing = session.exec(
        select(model.id).where(
            model.organization_id == organization_id, model.external_id == external_id
        )
    ).first()
    if existing is not None and existing != own_id:
        raise Conflict(
            N_("external id %(id)s is already in use", id=repr(external_id)), field="external_id"
        )


def create_resident(
    *, session: Session, organization_id: uuid.UUID, data: ResidentCreate, actor: Actor
) -> Resident:
    _check_site(session, organization_id, data.site_id)
    _check_external_id(session, Resident, organization_id, data.external_id)
    resident = Resident.model_validate(
        data,
        update={
            "organization_id": organization_id,
            "phone_kind": phone_kind(data.phone),
            "phone2_kind": phone_kind(data.phone2),
        },
    )
    session.add(resident)
    _flush_or_conflict(session, "external_id", N_("external id already in use"))
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="create",
        entity_type="resident",
        entity_id=resident.id,
        fields=data.model_fields_set,
    )
    return resident


def get_resident(
    *,
    session: Session,
    organization_id: uuid.UUID,
    resident_id: uuid.UUID,
    actor: Actor | None = None,
) -> Resident:
    """Reads of a resident are audited too, when an actor is given (API reads always are)."""
    resident = _get_scoped(session, Resident, organization_id, resident_id, "resident")
    if actor is not None:
        record(
            session=session,
            organization_id=organization_id,
            actor=actor,
            action="read",
            entity_type="resident",
            entity_id=resident.id,
        )
    return resident


def list_residents(
    *,
    session: Session,
    organization_id: uuid.UUID,
    site_id: uuid.UUID | None = None,
    language: str | None = None,
    status: ResidentStatus | None = None,
    member_id: uuid.UUID | None = None,
    q: str | None = None,
    flag: str | None = None,
    skip: int = 0,
    limit: int = 100,
) -> tuple[list[Resident], int]:
    """A page in kana order; ``flag`` is one of RESIDENT_FLAGS (lives alone, elderly...)."""
    query = select(Resident).where(Resident.organization_id == organization_id)
    if flag is not None:
        if flag not in RESIDENT_FLAGS:
            raise Invalid(N_("unknown flag %(flag)s", flag=repr(flag)), field="flag")
        query = query.where(col(getattr(Resident, flag)).is_(True))
    if site_id is not None:
        query = query.where(Resident.site_id == site_id)
    if language:
        query = query.where(Resident.language == language)
    if status is not None:
        query = query.where(Resident.status == status)
    if member_id is not None:
        query = query.where(
            col(Resident.id).in_(
                select(Assignment.resident_id).where(Assignment.member_id == member_id)
            )
        )
    if q and q.strip():
        query = query.where(_resident_search(q))
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(Resident.name_kana), col(Resident.name), col(Resident.id))
        .offset(skip)
        .limit(min(limit, MAX_PAGE))
    ).all()
    return list(rows), count


def _resident_search(q: str):  # type: ignore[no-untyped-def]
    """Search by name, kana or phone; phone digits match however they were typed."""
    text = unicodedata.normalize("NFKC", q).strip()
    pattern = f"%{text.lower()}%"
    conditions = [
        func.lower(Resident.name).like(pattern),
        func.lower(Resident.name_kana).like(pattern),
        col(Resident.external_id) == text,
    ]
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 4:
        national = digits[1:] if digits.startswith("0") else digits
        conditions.append(col(Resident.phone).like(f"%{national}%"))
        conditions.append(col(Resident.phone2).like(f"%{national}%"))
    return or_(*conditions)


def update_resident(
    *,
    session: Session,
    organization_id: uuid.UUID,
    resident_id: uuid.UUID,
    data: ResidentUpdate,
    actor: Actor,
) -> Resident:
    resident = _get_scoped(session, Resident, organization_id, resident_id, "resident")
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "language", "preferred_channel", "status"):
        if required in changes and changes[required] is None:
            raise Invalid(N_("%(field)s cannot be empty", field=required), field=required)
    if "site_id" in changes:
        _check_site(session, organization_id, changes["site_id"])
    if "external_id" in changes:
        _check_external_id(session, Resident, organization_id, changes["external_id"], resident.id)
    status = changes.get("status", resident.status)
    away_until = changes.get("away_until", resident.away_until)
    if status == ResidentStatus.away and away_until is None:
        raise Invalid(
            N_("status 'away' needs away_until (the date they return)"), field="away_until"
        )
    changes = _changed_fields(resident, changes)
    if not changes:
        return resident
    resident.sqlmodel_update(changes)
    if "phone" in changes:
        resident.phone_kind = phone_kind(resident.phone)
    if "phone2" in changes:
        resident.phone2_kind = phone_kind(resident.phone2)
    resident.updated_at = utcnow()
    session.add(resident)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="update",
        entity_type="resident",
        entity_id=resident.id,
        fields=changes.keys(),
        detail={"sensitive_fields": sorted(RESIDENT_SENSITIVE_FIELDS & changes.keys())},
    )
    return resident


def delete_resident(
    *, session: Session, organization_id: uuid.UUID, resident_id: uuid.UUID, actor: Actor
) -> None:
    resident = _get_scoped(session, Resident, organization_id, resident_id, "resident")
    session.exec(delete(Assignment).where(Assignment.resident_id == resident.id))  # type: ignore[call-overload]
    session.delete(resident)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="delete",
        entity_type="resident",
        entity_id=resident.id,
    )


# --- Members ----------------------------------------------------------------------------------


def create_member(
    *, session: Session, organization_id: uuid.UUID, data: MemberCreate, actor: Actor
) -> Member:
    _check_external_id(session, Member, organization_id, data.external_id)
    member = Member.model_validate(
        data, update={"organization_id": organization_id, "phone_kind": phone_kind(data.phone)}
    )
    session.add(member)
    _flush_or_conflict(session, "external_id", N_("external id already in use"))
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="create",
        entity_type="member",
        entity_id=member.id,
        fields=data.model_fields_set,
    )
    return member


def get_member(*, session: Session, organization_id: uuid.UUID, member_id: uuid.UUID) -> Member:
    return _get_scoped(session, Member, organization_id, member_id, "member")


def list_members(
    *,
    session: Session,
    organization_id: uuid.UUID,
    active: bool | None = None,
    kind: str | None = None,
    language: str | None = None,
    q: str | None = None,
    skip: int = 0,
    limit: int = 100,
) -> tuple[list[Member], int]:
    query = select(Member).where(Member.organization_id == organization_id)
    if active is not None:
        query = query.where(Member.active == active)
    if kind:
        query = query.where(Member.kind == kind)
    if q and q.strip():
        pattern = f"%{unicodedata.normalize('NFKC', q).strip().lower()}%"
        query = query.where(
            or_(func.lower(Member.name).like(pattern), func.lower(Member.name_kana).like(pattern))
        )
    rows = list(session.exec(query.order_by(col(Member.name_kana), col(Member.name))).all())
    if language:
        # Languages are a small JSON list; filtering in Python keeps SQLite and PostgreSQL alike.
        rows = [m for m in rows if language in (m.languages or [])]
    return rows[skip : skip + min(limit, MAX_PAGE)], len(rows)


def update_member(
    *,
    session: Session,
    organization_id: uuid.UUID,
    member_id: uuid.UUID,
    data: MemberUpdate,
    actor: Actor,
) -> Member:
    member = get_member(session=session, organization_id=organization_id, member_id=member_id)
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "phone", "kind", "languages", "active"):
        if required in changes and changes[required] is None:
            raise Invalid(N_("%(field)s cannot be empty", field=required), field=required)
    if "external_id" in changes:
        _check_external_id(session, Member, organization_id, changes["external_id"], member.id)
    changes = _changed_fields(member, changes)
    if not changes:
        return member
    member.sqlmodel_update(changes)
    if "phone" in changes:
        member.phone_kind = phone_kind(member.phone)
    member.updated_at = utcnow()
    session.add(member)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="update",
        entity_type="member",
        entity_id=member.id,
        fields=changes.keys(),
    )
    return member


def delete_member(
    *, session: Session, organization_id: uuid.UUID, member_id: uuid.UUID, actor: Actor
) -> None:
    member = get_member(session=session, organization_id=organization_id, member_id=member_id)
    session.exec(delete(Assignment).where(Assignment.member_id == member.id))  # type: ignore[call-overload]
    session.delete(member)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="delete",
        entity_type="member",
        entity_id=member.id,
    )


# --- Assignments ------------------------------------------------------------------------------


def create_assignment(
    *, session: Session, organization_id: uuid.UUID, data: AssignmentCreate, actor: Actor
) -> Assignment:
    try:
        _get_scoped(session, Resident, organization_id, data.resident_id, "resident")
    except NotFound:
        raise Invalid(N_("no such resident"), field="resident_id") from None
    try:
        get_member(session=session, organization_id=organization_id, member_id=data.member_id)
    except NotFound:
        raise Invalid(N_("no such member"), field="member_id") from None
    existing = session.exec(
        select(Assignment).where(
            Assignment.resident_id == data.resident_id,
            or_(Assignment.member_id == data.member_id, Assignment.rank == data.rank),
        )
    ).first()
    if existing is not None:
        if existing.member_id == data.member_id:
            raise Conflict(
                N_("this member is already assigned to this resident"), field="member_id"
            )
        raise Conflict(
                N_("the resident already has a contact at rank %(rank)s", rank=data.rank),
                field="rank",
            )
    assignment = Assignment.model_validate(data, update={"organization_id": organization_id})
    session.add(assignment)
    _flush_or_conflict(session, "rank", N_("conflicting assignment"))
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="create",
        entity_type="assignment",
        entity_id=assignment.id,
        fields=["resident_id", "member_id", "rank"],
        detail={"resident_id": str(data.resident_id), "member_id": str(data.member_id)},
    )
    return assignment


def get_assignment(
    *, session: Session, organization_id: uuid.UUID, assignment_id: uuid.UUID
) -> Assignment:
    return _get_scoped(session, Assignment, organization_id, assignment_id, "assignment")


def list_assignments(
    *,
    session: Session,
    organization_id: uuid.UUID,
    resident_id: uuid.UUID | None = None,
    member_id: uuid.UUID | None = None,
    skip: int = 0,
    limit: int = 100,
) -> tuple[list[Assignment], int]:
    query = select(Assignment).where(Assignment.organization_id == organization_id)
    if resident_id is not None:
        query = query.where(Assignment.resident_id == resident_id)
    if member_id is not None:
        query = query.where(Assignment.member_id == member_id)
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(Assignment.resident_id), col(Assignment.rank))
        .offset(skip)
        .limit(min(limit, MAX_PAGE))
    ).all()
    return list(rows), count


def update_assignment(
    *,
    session: Session,
    organization_id: uuid.UUID,
    assignment_id: uuid.UUID,
    data: AssignmentUpdate,
    actor: Actor,
) -> Assignment:
    assignment = get_assignment(
        session=session, organization_id=organization_id, assignment_id=assignment_id
    )
    if data.rank is not None and data.rank != assignment.rank:
        clash = session.exec(
            select(Assignment).where(
                Assignment.resident_id == assignment.resident_id, Assignment.rank == data.rank
            )
        ).first()
        if clash is not None:
            raise Conflict(
                N_("the resident already has a contact at rank %(rank)s", rank=data.rank),
                field="rank",
            )
        assignment.rank = data.rank
        session.add(assignment)
        record(
            session=session,
            organization_id=organization_id,
            actor=actor,
            action="update",
            entity_type="assignment",
            entity_id=assignment.id,
            fields=["rank"],
        )
    return assignment


def delete_assignment(
    *, session: Session, organization_id: uuid.UUID, assignment_id: uuid.UUID, actor: Actor
) -> None:
    assignment = get_assignment(
        session=session, organization_id=organization_id, assignment_id=assignment_id
    )
    session.delete(assignment)
    record(
        session=session,
        organization_id=organization_id,
        actor=actor,
        action="delete",
        entity_type="assignment",
        entity_id=assignment.id,
    )
