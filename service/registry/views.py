"""The registry REST API under /api/v1. Views stay thin: parse, call the service, commit."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile

from service.auth.deps import Admin, Coordinator, CurrentUser, actor_for
from service.common import Page, Skip, StrictBody
from service.db import SessionDep
from service.errors import Invalid, NotFound
from service.registry import commands, csv_io, service
from service.registry.models import (
    AssignmentCreate,
    AssignmentPublic,
    AssignmentUpdate,
    MemberCreate,
    MemberPublic,
    MemberUpdate,
    Organization,
    OrganizationPublic,
    OrganizationUpdate,
    ResidentCreate,
    ResidentPublic,
    ResidentStatus,
    ResidentUpdate,
    SiteCreate,
    SitePublic,
    SiteUpdate,
)
from service.texts import N_, accept_language

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]

# --- The organization ------------------------------------------------------------------------


@router.get("/organization", response_model=OrganizationPublic, tags=["organization"])
def read_organization(session: SessionDep, user: CurrentUser) -> OrganizationPublic:
    """The caller's organization and its settings, with its sender numbers."""
    org = session.get(Organization, user.organization_id)
    if org is None:
        raise NotFound(N_("organization not found"))
    return service.organization_public(session, org)


@router.patch("/organization", response_model=OrganizationPublic, tags=["organization"])
def update_organization(
    session: SessionDep, user: Admin, data: OrganizationUpdate
) -> OrganizationPublic:
    """Change the escalation windows (cases opened from now on take them) and the names
    per language (merged into the stored ones; a ``null`` name removes that language's),
    and the sender numbers and Messaging Service (replaced; each belongs to at most one
    organization: inbound SMS to them come to this organization's inbox)."""
    org = service.update_organization(
        session=session, organization_id=user.organization_id, data=data, actor=actor_for(user)
    )
    session.commit()
    return service.organization_public(session, org)


# --- Sites ------------------------------------------------------------------------------------


@router.get("/sites", response_model=Page[SitePublic], tags=["sites"])
def list_sites(session: SessionDep, user: CurrentUser) -> Page[SitePublic]:
    sites = service.list_sites(session=session, organization_id=user.organization_id)
    return Page(data=[SitePublic.model_validate(s) for s in sites], count=len(sites))


@router.post("/sites", response_model=SitePublic, status_code=201, tags=["sites"])
def create_site(session: SessionDep, user: Coordinator, data: SiteCreate) -> SitePublic:
    site = service.create_site(
        session=session, organization_id=user.organization_id, data=data, actor=actor_for(user)
    )
    session.commit()
    return SitePublic.model_validate(site)


@router.get("/sites/{site_id}", response_model=SitePublic, tags=["sites"])
def read_site(session: SessionDep, user: CurrentUser, site_id: uuid.UUID) -> SitePublic:
    return SitePublic.model_validate(
        service.get_site(session=session, organization_id=user.organization_id, site_id=site_id)
    )


@router.patch("/sites/{site_id}", response_model=SitePublic, tags=["sites"])
def update_site(
    session: SessionDep, user: Coordinator, site_id: uuid.UUID, data: SiteUpdate
) -> SitePublic:
    site = service.update_site(
        session=session,
        organization_id=user.organization_id,
        site_id=site_id,
        data=data,
        actor=actor_for(user),
    )
    session.commit()
    return SitePublic.model_validate(site)


@router.delete("/sites/{site_id}", status_code=204, tags=["sites"])
def delete_site(session: SessionDep, user: Admin, site_id: uuid.UUID) -> Response:
    service.delete_site(
        session=session,
        organization_id=user.organization_id,
        site_id=site_id,
        actor=actor_for(user),
    )
    session.commit()
    return Response(status_code=204)


# --- Residents --------------------------------------------------------------------------------


@router.get("/residents", response_model=Page[ResidentPublic], tags=["residents"])
def list_residents(
    session: SessionDep,
    user: CurrentUser,
    site_id: uuid.UUID | None = None,
    language: str | None = None,
    status: ResidentStatus | None = None,
    member_id: uuid.UUID | None = None,
    q: Annotated[str | None, Query(max_length=100, description="name, kana or phone")] = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> Page[ResidentPublic]:
    rows, count = commands.list_residents_read(
        session=session,
        organization_id=user.organization_id,
        actor=actor_for(user),
        site_id=site_id,
        language=language,
        status=status,
        member_id=member_id,
        q=q,
        skip=skip,
        limit=limit,
    )
    # Serialize before committing: the commit expires the rows, and reading them afterwards
    # would reload each resident with its own SELECT.
    page = Page(data=[ResidentPublic.model_validate(r) for r in rows], count=count)
    session.commit()
    return page


@router.post("/residents", response_model=ResidentPublic, status_code=201, tags=["residents"])
def create_resident(session: SessionDep, user: Coordinator, data: ResidentCreate) -> ResidentPublic:
    resident = service.create_resident(
        session=session, organization_id=user.organization_id, data=data, actor=actor_for(user)
    )
    session.commit()
    return ResidentPublic.model_validate(resident)


@router.get("/residents/{resident_id}", response_model=ResidentPublic, tags=["residents"])
def read_resident(session: SessionDep, user: CurrentUser, resident_id: uuid.UUID) -> ResidentPublic:
    resident = service.get_resident(
        session=session,
        organization_id=user.organization_id,
        resident_id=resident_id,
        actor=actor_for(user),
    )
    session.commit()
    return ResidentPublic.model_validate(resident)


@router.patch("/residents/{resident_id}", response_model=ResidentPublic, tags=["residents"])
def update_resident(
    session: SessionDep, user: Coordinator, resident_id: uuid.UUID, data: ResidentUpdate
) -> ResidentPublic:
    resident = service.update_resident(
        session=session,
        organization_id=user.organization_id,
        resident_id=resident_id,
        data=data,
        actor=actor_for(user),
    )
    session.commit()
    return ResidentPublic.model_validate(resident)


@router.delete("/residents/{resident_id}", status_code=204, tags=["residents"])
def delete_resident(session: SessionDep, user: Admin, resident_id: uuid.UUID) -> Response:
    service.delete_resident(
        session=session,
        organization_id=user.organization_id,
        resident_id=resident_id,
        actor=actor_for(user),
    )
    session.commit()
    return Response(status_code=204)


@router.get(
    "/residents/{resident_id}/assignments",
    response_model=Page[AssignmentPublic],
    tags=["residents"],
)
def read_resident_assignments(
    session: SessionDep, user: CurrentUser, resident_id: uuid.UUID
) -> Page[AssignmentPublic]:
    service.get_resident(
        session=session,
        organization_id=user.organization_id,
        resident_id=resident_id,
        actor=actor_for(user),
    )
    rows, count = service.list_assignments(
        session=session, organization_id=user.organization_id, resident_id=resident_id
    )
    page = Page(data=[AssignmentPublic.model_validate(a) for a in rows], count=count)
    session.commit()
    return page


class AssignmentOrder(StrictBody):
    """The resident's contacts in their new order, first contact first."""

    assignment_ids: list[uuid.UUID]


@router.put(
    "/residents/{resident_id}/assignments/order",
    response_model=Page[AssignmentPublic],
    tags=["residents"],
)
def reorder_resident_assignments(
    session: SessionDep, user: Coordinator, resident_id: uuid.UUID, data: AssignmentOrder
) -> Page[AssignmentPublic]:
    """Ranks 1, 2, 3... in the order given; every one of the resident's contacts once."""
    rows = commands.reorder_assignments(
        session=session,
        organization_id=user.organization_id,
        resident_id=resident_id,
        assignment_ids=data.assignment_ids,
        actor=actor_for(user),
    )
    page = Page(data=[AssignmentPublic.model_validate(a) for a in rows], count=len(rows))
    session.commit()
    return page


# --- Members ----------------------------------------------------------------------------------


@router.get("/members", response_model=Page[MemberPublic], tags=["members"])
def list_members(
    session: SessionDep,
    user: CurrentUser,
    active: bool | None = None,
    kind: str | None = None,
    language: str | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> Page[MemberPublic]:
    rows, count = service.list_members(
        session=session,
        organization_id=user.organization_id,
        active=active,
        kind=kind,
        language=language,
        q=q,
        skip=skip,
        limit=limit,
    )
    return Page(data=[MemberPublic.model_validate(m) for m in rows], count=count)


@router.post("/members", response_model=MemberPublic, status_code=201, tags=["members"])
def create_member(session: SessionDep, user: Coordinator, data: MemberCreate) -> MemberPublic:
    member = service.create_member(
        session=session, organization_id=user.organization_id, data=data, actor=actor_for(user)
    )
    session.commit()
    return MemberPublic.model_validate(member)


@router.get("/members/{member_id}", response_model=MemberPublic, tags=["members"])
def read_member(session: SessionDep, user: CurrentUser, member_id: uuid.UUID) -> MemberPublic:
    return MemberPublic.model_validate(
        service.get_member(
            session=session, organization_id=user.organization_id, member_id=member_id
        )
    )


@router.patch("/members/{member_id}", response_model=MemberPublic, tags=["members"])
def update_member(
    session: SessionDep, user: Coordinator, member_id: uuid.UUID, data: MemberUpdate
) -> MemberPublic:
    member = service.update_member(
        session=session,
        organization_id=user.organization_id,
        member_id=member_id,
        data=data,
        actor=actor_for(user),
    )
    session.commit()
    return MemberPublic.model_validate(member)


@router.delete("/members/{member_id}", status_code=204, tags=["members"])
def delete_member(session: SessionDep, user: Admin, member_id: uuid.UUID) -> Response:
    service.delete_member(
        session=session,
        organization_id=user.organization_id,
        member_id=member_id,
        actor=actor_for(user),
    )
    session.commit()
    return Response(status_code=204)


# --- Assignments ------------------------------------------------------------------------------


@router.get("/assignments", response_model=Page[AssignmentPublic], tags=["assignments"])
def list_assignments(
    session: SessionDep,
    user: CurrentUser,
    resident_id: uuid.UUID | None = None,
    member_id: uuid.UUID | None = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> Page[AssignmentPublic]:
    rows, count = service.list_assignments(
        session=session,
        organization_id=user.organization_id,
        resident_id=resident_id,
        member_id=member_id,
        skip=skip,
        limit=limit,
    )
    return Page(data=[AssignmentPublic.model_validate(a) for a in rows], count=count)


@router.post("/assignments", response_model=AssignmentPublic, status_code=201, tags=["assignments"])
def create_assignment(
    session: SessionDep, user: Coordinator, data: AssignmentCreate
) -> AssignmentPublic:
    assignment = service.create_assignment(
        session=session, organization_id=user.organization_id, data=data, actor=actor_for(user)
    )
    session.commit()
    return AssignmentPublic.model_validate(assignment)


@router.patch("/assignments/{assignment_id}", response_model=AssignmentPublic, tags=["assignments"])
def update_assignment(
    session: SessionDep, user: Coordinator, assignment_id: uuid.UUID, data: AssignmentUpdate
) -> AssignmentPublic:
    assignment = service.update_assignment(
        session=session,
        organization_id=user.organization_id,
        assignment_id=assignment_id,
        data=data,
        actor=actor_for(user),
    )
    session.commit()
    return AssignmentPublic.model_validate(assignment)


@router.delete("/assignments/{assignment_id}", status_code=204, tags=["assignments"])
def delete_assignment(session: SessionDep, user: Coordinator, assignment_id: uuid.UUID) -> Response:
    service.delete_assignment(
        session=session,
        organization_id=user.organization_id,
        assignment_id=assignment_id,
        actor=actor_for(user),
    )
    session.commit()
    return Response(status_code=204)


# --- CSV import and export ---------------------------------------------------------------------

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


@router.post("/import/{kind}", tags=["import"])
def import_file(
    request: Request,
    session: SessionDep,
    user: Coordinator,
    kind: Literal["residents", "members", "assignments"],
    file: Annotated[UploadFile, File(description="CSV in UTF-8, UTF-8 with BOM or CP932")],
    dry_run: bool = False,
    apply_valid_rows: bool = False,
) -> dict[str, object]:
    """Validate the whole file; apply it only if every row is good, unless apply_valid_rows.

    The response is the report; with apply_valid_rows its ``reject_csv`` holds the bad rows.
    Its reasons are in Japanese when ``Accept-Language`` asks for it, else in English.
    """
    language = accept_language(request.headers.get("accept-language"))
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise Invalid(N_("the file is larger than 50 MB; split it"), field="file")
    try:
        report = csv_io.import_csv(
            session=session,
            organization_id=user.organization_id,
            kind=kind,
            data=data,
            actor=actor_for(user),
            dry_run=dry_run,
            apply_valid_rows=apply_valid_rows,
            language=language,
        )
    except csv_io.CsvFileError as exc:
        session.rollback()
        raise Invalid(exc.text, field="file") from None
    if report.applied:
        session.commit()
    else:
        session.rollback()
    return report.as_dict(language)


@router.get("/export/residents", tags=["import"])
def export_residents(
    session: SessionDep,
    user: Coordinator,
    encoding: Literal["utf-8-sig", "utf-8", "cp932"] = "utf-8-sig",
    headers: Literal["ja", "en"] = "ja",
) -> Response:
    try:
        body = csv_io.export_residents(
            session=session,
            organization_id=user.organization_id,
            actor=actor_for(user),
            encoding=encoding,
            headers=headers,
        )
    except csv_io.ExportEncodingError as exc:
        session.rollback()
        raise Invalid(exc.text, field="encoding") from None
    session.commit()
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    return Response(
        content=body,
        media_type=f"text/csv; charset={charset}",
        headers={"Content-Disposition": 'attachment; filename="residents.csv"'},
    )
