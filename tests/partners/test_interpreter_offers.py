"""Offering interpreters to partners (issue 21, item 3): admin-only, audited on both sides,
bad input named; and the rule that picks who interprets, as a table."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.audit.service import Actor
from service.partners.interpreters import Candidate, choose_interpreter
from service.partners.models import Partnership, PartnershipStatus, pair_key
from service.registry import service as registry
from service.registry.models import MemberCreate, MemberKind
from tests.conftest import Staff


def _member(engine: Engine, org_id: uuid.UUID, kind=MemberKind.interpreter, langs=None) -> str:
    with Session(engine) as s:
        member = registry.create_member(
            session=s,
            organization_id=org_id,
            data=MemberCreate(
                name="Nguyen Thi Lan",
                phone=f"080-4{uuid.uuid4().int % 1000:03d}-{uuid.uuid4().int % 10000:04d}",
                languages=langs or ["vi", "ja"],
                kind=kind,
            ),
            actor=Actor(label="test"),
        )
        s.commit()
        return str(member.id)


def _partners(engine: Engine, a: uuid.UUID, b: uuid.UUID) -> None:
    with Session(engine) as s:
        s.add(
            Partnership(
                inviter_org_id=a,
                invitee_org_id=b,
                status=PartnershipStatus.active,
                open_pair=pair_key(a, b),
            )
        )
        s.commit()


URL = "/api/v1/interpreter-offers"


def test_an_admin_offers_an_interpreter_and_the_partner_sees_the_offer(
    client: TestClient, engine: Engine, admin: Staff, other_org_admin: Staff
):
    _partners(engine, admin.org_id, other_org_admin.org_id)
    member_id = _member(engine, other_org_admin.org_id)
    response = client.post(
        URL, json={"member_id": member_id, "languages": ["vi"]}, headers=other_org_admin.headers
    )
    assert response.status_code == 201, response.text
    offer = response.json()
    assert offer["languages"] == ["vi"] and offer["active"] is True
    seen = client.get(f"{URL}/from-partners", headers=admin.headers).json()
    assert [o["member_id"] for o in seen["data"]] == [member_id]
    assert "phone" not in seen["data"][0]
    with Session(engine) as s:
        logged = {
            e.organization_id
            for e in s.exec(select(AuditEntry).where(AuditEntry.action == "interpreter_offer"))
        }
    assert logged == {admin.org_id, other_org_admin.org_id}

    withdrawn = client.post(f"{URL}/{offer['id']}/withdraw", headers=other_org_admin.headers)
    assert withdrawn.status_code == 200 and withdrawn.json()["active"] is False
    assert client.get(f"{URL}/from-partners", headers=admin.headers).json()["count"] == 0
    own = client.get(URL, headers=other_org_admin.headers).json()
    assert own["count"] == 1 and own["data"][0]["withdrawn_at"] is not None


def test_without_a_partnership_nobody_sees_the_offer(
    client: TestClient, engine: Engine, admin: Staff, other_org_admin: Staff
):
    member_id = _member(engine, other_org_admin.org_id)
    response = client.post(
        URL, json={"member_id": member_id, "languages": ["vi"]}, headers=other_org_admin.headers
    )
    assert response.status_code == 201
    assert client.get(f"{URL}/from-partners", headers=admin.headers).json()["count"] == 0


def test_only_an_admin_offers_or_lists(
    client: TestClient, engine: Engine, coordinator: Staff, admin: Staff
):
    member_id = _member(engine, coordinator.org_id)
    body = {"member_id": member_id, "languages": ["vi"]}
    assert client.post(URL, json=body, headers=coordinator.headers).status_code == 403
    assert client.get(URL, headers=coordinator.headers).status_code == 403
    offer = client.post(URL, json=body, headers=admin.headers).json()
    withdraw = client.post(f"{URL}/{offer['id']}/withdraw", headers=coordinator.headers)
    assert withdraw.status_code == 403


@pytest.mark.parametrize(
    ("kind", "languages", "offered", "status", "field"),
    [
        (MemberKind.welfare_committee, ["vi", "ja"], ["vi"], 422, "member_id"),
        (MemberKind.interpreter, ["vi", "ja"], ["xx"], 422, "languages"),
        (MemberKind.interpreter, ["vi", "ja"], ["id"], 422, "languages"),  # not theirs
        (MemberKind.interpreter, ["vi", "ja"], ["ja"], 422, "languages"),
        (MemberKind.interpreter, ["vi", "ja"], [], 422, "languages"),
        (MemberKind.supporter, ["vi", "ja"], ["vi"], 201, None),
    ],
)
def test_bad_offers_are_refused_by_name(
    client: TestClient, engine: Engine, admin: Staff, kind, languages, offered, status, field
):
    member_id = _member(engine, admin.org_id, kind, languages)
    response = client.post(
        URL, json={"member_id": member_id, "languages": offered}, headers=admin.headers
    )
    assert response.status_code == status, response.text
    if field:
        assert field in response.text
    with Session(engine) as s:
        offers = s.exec(select(AuditEntry).where(AuditEntry.action == "interpreter_offer")).all()
    assert len(offers) == (1 if status == 201 else 0)  # nothing applied halfway


def test_another_organizations_member_or_offer_is_not_found(
    client: TestClient, engine: Engine, admin: Staff, other_org_admin: Staff
):
    _partners(engine, admin.org_id, other_org_admin.org_id)
    theirs = _member(engine, other_org_admin.org_id)
    response = client.post(
        URL, json={"member_id": theirs, "languages": ["vi"]}, headers=admin.headers
    )
    assert response.status_code == 404
    offer = client.post(
        URL, json={"member_id": theirs, "languages": ["vi"]}, headers=other_org_admin.headers
    ).json()
    assert client.post(f"{URL}/{offer['id']}/withdraw", headers=admin.headers).status_code == 404


# --------------------------------------------------------------------------- the rule, as a table

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def _c(name: str, org: uuid.UUID, speaks, offered=(), partner=False) -> Candidate:
    return Candidate(
        member_id=uuid.uuid5(uuid.NAMESPACE_DNS, name),
        organization_id=org,
        name=name,
        kind="interpreter",
        languages=tuple(speaks),
        offered=tuple(offered),
        partner=partner,
    )


OWN_VI = _c("own-vi", A, ["vi", "ja"])
OWN_ID = _c("own-id", A, ["id"])
B_VI = _c("b-vi", B, ["vi"], ["vi"], partner=True)
B_VI_ENDED = _c("b-vi-ended", B, ["vi"], ["vi"], partner=False)
B_SPEAKS_VI_OFFERS_ID = _c("b-vi-id", B, ["vi", "id"], ["id"], partner=True)
C_OFFERS_VI_UNSPOKEN = _c("c-offers", C, ["ne"], ["vi"], partner=True)


@pytest.mark.parametrize(
    ("language", "own", "offered", "excluded", "expected"),
    [
        ("vi", [OWN_VI], [B_VI], (), OWN_VI),  # the organization's own, always first
        ("vi", [OWN_ID], [B_VI], (), B_VI),  # nobody of its own for vi: the partner's
        ("vi", [], [B_VI_ENDED], (), None),  # no longer a partner
        ("vi", [], [B_SPEAKS_VI_OFFERS_ID], (), None),  # speaks vi, offered for id only
        ("id", [], [B_SPEAKS_VI_OFFERS_ID], (), B_SPEAKS_VI_OFFERS_ID),
        ("vi", [], [C_OFFERS_VI_UNSPOKEN], (), None),  # an offer they cannot keep
        ("vi", [], [B_VI_ENDED, B_VI], (), B_VI),
        ("vi", [], [B_VI], (B_VI.member_id,), None),  # excluded: a clashing case code
        ("vi", [OWN_VI], [B_VI], (OWN_VI.member_id,), B_VI),
        ("ne", [OWN_VI], [B_VI], (), None),
    ],
)
def test_who_interprets(language, own, offered, excluded, expected):
    assert choose_interpreter(language, own, offered, excluded=excluded) == expected


LANGS = ["vi", "id", "ne", "en"]
ORGS = [A, B, C]


@st.composite
def _candidates(draw, own: bool):
    found = []
    for n in range(draw(st.integers(0, 4))):
        speaks = draw(st.lists(st.sampled_from(LANGS), max_size=3, unique=True))
        found.append(
            Candidate(
                member_id=uuid.UUID(int=n + (0 if own else 100)),
                organization_id=A if own else draw(st.sampled_from([B, C])),
                name=f"m{n}",
                kind="interpreter",
                languages=tuple(speaks),
                offered=() if own else tuple(draw(st.lists(st.sampled_from(LANGS), max_size=3))),
                partner=False if own else draw(st.booleans()),
            )
        )
    return found


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.sampled_from(LANGS), _candidates(own=True), _candidates(own=False), st.data())
def test_the_chosen_interpreter_speaks_and_own_come_first(language, own, offered, data):
    excluded = set(data.draw(st.sets(st.sampled_from([c.member_id for c in own + offered] or [A]))))
    chosen = choose_interpreter(language, own, offered, excluded=excluded)
    own_able = [c for c in own if language in c.languages and c.member_id not in excluded]
    if own_able:
        assert chosen == own_able[0]  # the organization's own, always first
    elif chosen is not None:
        assert chosen in offered and chosen.partner  # only an active partner's
        assert language in chosen.offered and language in chosen.languages
        assert chosen.member_id not in excluded
    else:
        assert not any(
            c.partner and language in c.offered and language in c.languages
            for c in offered
            if c.member_id not in excluded
        )
