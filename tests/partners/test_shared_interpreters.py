"""Shared interpreters (issue 21, item 3): a partner's interpreter is alerted when the
council has nobody for the resident's language, through the real webhooks and jobs; their
answer reaches the council's case, never one of their own organization's."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.service import get_or_create_organization
from service.checkins.models import TimelineEvent
from service.escalations import chains
from service.escalations import service as escalations
from service.escalations.models import (
    Alert,
    AlertState,
    Escalation,
    EscalationReason,
    EscalationState,
)
from service.partners.interpreters import InterpreterOffer
from service.partners.models import Partnership, PartnershipStatus, pair_key
from service.registry import service as registry
from service.registry.models import Member, MemberCreate, MemberKind, Organization, ResidentCreate
from service.telephony.models import OutboxMessage, OutboxPurpose
from tests.checkins.conftest import ACTOR, World
from tests.checkins.conftest import world as _world  # noqa: F401  (the `world` fixture)


@pytest.fixture(name="world")
def _partner_world(_world: World) -> World:  # noqa: F811
    """The check-in tests' world (the council, its clock, signed webhooks and jobs)."""
    return _world


PARTNER = "ベトナム人支援の会"
INTERPRETER_PHONE = "+818040000001"  # 080-4000-0001, of the partner
R1_PHONE = "+819010000001"
NOTES = "糖尿病、インスリン注射。夫からの暴力の相談歴あり"


def _partner_member(
    world: World,
    org_id: uuid.UUID,
    key: str,
    phone: str,
    languages: list[str],
    kind: MemberKind = MemberKind.interpreter,
) -> uuid.UUID:
    with Session(world.engine) as s:
        member = registry.create_member(
            session=s,
            organization_id=org_id,
            data=MemberCreate(
                external_id=key, name=f"通訳 {key}", phone=phone, languages=languages, kind=kind
            ),
            actor=ACTOR,
        )
        s.commit()
        world.members[key] = member.id
        return member.id


def _partner(world: World, *, active: bool = True) -> uuid.UUID:
    with Session(world.engine) as s:
        org = get_or_create_organization(session=s, name=PARTNER)
        s.commit()
        org_id = org.id
    if active:
        _partnership(world, org_id)
    return org_id


def _partnership(world: World, org_id: uuid.UUID) -> uuid.UUID:
    with Session(world.engine) as s:
        row = Partnership(
            inviter_org_id=world.org_id,
            invitee_org_id=org_id,
            status=PartnershipStatus.active,
            open_pair=pair_key(world.org_id, org_id),
        )
        s.add(row)
        s.commit()
        return row.id


def _end_partnership(world: World, org_id: uuid.UUID) -> None:
    with Session(world.engine) as s:
        row = s.exec(select(Partnership).where(Partnership.invitee_org_id == org_id)).one()
        row.status, row.open_pair = PartnershipStatus.ended, None
        s.add(row)
        s.commit()


def _offer(world: World, org_id: uuid.UUID, key: str, languages: list[str]) -> uuid.UUID:
    with Session(world.engine) as s:
        offer = InterpreterOffer(
            organization_id=org_id,
            member_id=world.members[key],
            languages=languages,
            offered_by="test admin",
        )
        s.add(offer)
        s.commit()
        return offer.id


def _withdraw(world: World, offer_id: uuid.UUID) -> None:
    with Session(world.engine) as s:
        offer = s.get(InterpreterOffer, offer_id)
        assert offer is not None
        offer.active = False
        s.add(offer)
        s.commit()


def _resident_asks_for_help(world: World, *, assigned: bool = True) -> Escalation:
    """R1, Vietnamese, needs an interpreter, registered with the council with case notes;
    the council's welfare member M1 (Japanese only) watches over her. She texts "2"."""
    if assigned and "M1" not in world.members:
        world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001", language="vi", needs_interpreter=True, notes=NOTES)
    if assigned:
        world.assign("R1", "M1", 1)
    world.broadcast()
    world.tick()
    world.sms(R1_PHONE, "2")
    with world.session() as s:
        return s.exec(select(Escalation).where(Escalation.organization_id == world.org_id)).one()


def _alerts_to(world: World, phone: str) -> list[OutboxMessage]:
    return [m for m in world.sent_to(phone) if m.purpose == OutboxPurpose.alert]


def _world_with_partner_interpreter(world: World) -> uuid.UUID:
    org_b = _partner(world)
    _partner_member(world, org_b, "P-vi", "080-4000-0001", ["vi", "ja"])
    _offer(world, org_b, "P-vi", ["vi"])
    return org_b


# --------------------------------------------------------------------------- the full flow


def test_a_partners_interpreter_is_alerted_and_their_1_takes_the_councils_case(world: World):
    org_b = _world_with_partner_interpreter(world)
    case = _resident_asks_for_help(world)

    [alert_sms] = _alerts_to(world, INTERPRETER_PHONE)
    # Sent from the council (its sender), about the council's case.
    assert alert_sms.organization_id == world.org_id
    assert case.case_code in alert_sms.body or "1" in alert_sms.body
    # Only what an alert carries: never the notes.
    assert "糖尿病" not in alert_sms.body and "暴力" not in alert_sms.body
    assert "090" not in alert_sms.body and "+8190" not in alert_sms.body

    reply = world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")
    assert "<Message>" in reply
    with world.session() as s:
        case = s.get(Escalation, case.id)
        assert case.state == EscalationState.acknowledged
        assert case.acknowledged_by == world.members["P-vi"]
        kinds = {
            (e.kind, e.detail.get("partner_org"))
            for e in s.exec(select(TimelineEvent).where(TimelineEvent.escalation_id == case.id))
        }
        assert ("escalation.alert", PARTNER) in kinds
        assert ("escalation.acknowledged", PARTNER) in kinds
        audits = s.exec(select(AuditEntry).where(AuditEntry.entity_id == str(case.id))).all()
        by_org = {(a.organization_id, a.action) for a in audits}
        for org in (world.org_id, org_b):
            assert (org, "partner_alert") in by_org
            assert (org, "partner_answer") in by_org
        # The partner's log names the case's organization and code, nothing of the resident.
        for entry in audits:
            if entry.organization_id == org_b:
                assert "住民" not in str(entry.detail) and "糖尿病" not in str(entry.detail)


def _partner_case_alerting(world: World, org_b: uuid.UUID, key: str) -> Escalation:
    """A case of the partner's own (its resident B1), staff handing it to member ``key``."""
    with Session(world.engine) as s:
        b1 = registry.create_resident(
            session=s,
            organization_id=org_b,
            data=ResidentCreate(external_id="B1", name="B住民", phone="090-2000-0001"),
            actor=ACTOR,
        )
        b_case = escalations.open_escalation(
            s, resident=b1, reason=EscalationReason.no_reply, now=world.clock.now()
        )
        s.flush()
        escalations.reassign(
            s,
            escalation=b_case,
            member=s.get(Member, world.members[key]),
            now=world.clock.now(),
            actor="staff:b",
        )
        s.commit()
        s.refresh(b_case)
        return b_case


def test_the_interpreters_1_reaches_the_case_it_names_not_their_own_orgs(world: World):
    """The interpreter has a case of their own organization waiting on them too: the
    council's case gets another code, and "1 <code>" takes the council's case only."""
    org_b = _world_with_partner_interpreter(world)
    b_case = _partner_case_alerting(world, org_b, "P-vi")
    case = _resident_asks_for_help(world)
    assert case.case_code != b_case.case_code
    [council_alert] = [
        a for a in _alerts_to(world, INTERPRETER_PHONE) if a.organization_id == world.org_id
    ]
    assert case.case_code in council_alert.body  # two cases: the alert names its code
    world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")
    with world.session() as s:
        assert s.get(Escalation, case.id).acknowledged_by == world.members["P-vi"]
        b_case = s.get(Escalation, b_case.id)
        assert b_case.state == EscalationState.alerting and b_case.acknowledged_by is None
    # and their "1 <own code>" takes their own organization's case.
    world.sms(INTERPRETER_PHONE, f"1 {b_case.case_code}")
    with world.session() as s:
        assert s.get(Escalation, b_case.id).acknowledged_by == world.members["P-vi"]


def test_an_interpreter_registered_with_two_organizations_answers_the_case_named(
    world: World,
):
    """The partner's interpreter is also a welfare member of a third organization, whose
    case waits on that record: "1 <council's code>" goes through the record the council's
    alert was sent to and takes the council's case; "1 <third's code>" takes the third's."""
    org_b = _world_with_partner_interpreter(world)
    with Session(world.engine) as s:
        org_c = get_or_create_organization(session=s, name="七尾市社会福祉協議会").id
        s.commit()
    _partner_member(world, org_c, "P-c", "080-4000-0001", ["vi", "ja"], MemberKind.supporter)
    c_case = _partner_case_alerting(world, org_c, "P-c")
    case = _resident_asks_for_help(world)
    assert case.case_code != c_case.case_code  # the same person: never the same code
    world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")
    with world.session() as s:
        assert s.get(Escalation, case.id).acknowledged_by == world.members["P-vi"]
        assert s.get(Escalation, c_case.id).acknowledged_by is None
    world.sms(INTERPRETER_PHONE, f"1 {c_case.case_code}")
    with world.session() as s:
        assert s.get(Escalation, c_case.id).acknowledged_by == world.members["P-c"]
        assert s.get(Escalation, case.id).acknowledged_by == world.members["P-vi"]
    assert org_b != org_c


def test_a_new_code_avoids_the_codes_of_cases_a_partners_member_is_on(world: World, monkeypatch):
    """Forced: a code the partner's interpreter already answers to is never given again,
    neither to the council's case alerting them nor to the partner's own next case."""
    org_b = _world_with_partner_interpreter(world)
    b_case = _partner_case_alerting(world, org_b, "P-vi")
    seen: list[set[str]] = []
    real = chains.free_code

    def spy(used: set[str]) -> str:
        seen.append(set(used))
        return real(used)

    monkeypatch.setattr(chains, "free_code", spy)
    with Session(world.engine) as s:
        interpreter = s.get(Member, world.members["P-vi"])
        partner = s.get(Organization, org_b)
        chain = [[chains.foreign_recipient_of(interpreter, partner)]]
        chains.new_case_code(s, world.org_id, chain)
        assert b_case.case_code in seen[-1]
        chains.new_case_code(s, world.org_id, [])
        assert b_case.case_code not in seen[-1]  # a chain without them: not their codes
    case = _resident_asks_for_help(world)
    with Session(world.engine) as s:
        chains.new_case_code(s, org_b, [])
        assert case.case_code in seen[-1]  # the partner's next case avoids the council's


# --------------------------------------------------------------------------- who is alerted


def test_the_councils_own_interpreter_is_preferred_over_a_partners(world: World):
    _world_with_partner_interpreter(world)
    world.member("I-vi", "080-3000-0300", ["vi", "ja"], kind=MemberKind.interpreter)
    _resident_asks_for_help(world)
    assert _alerts_to(world, INTERPRETER_PHONE) == []
    assert len(_alerts_to(world, "+818030000300")) == 1


def test_no_partner_interpreter_without_an_active_partnership(world: World):
    org_b = _partner(world, active=False)  # no partnership at all
    _partner_member(world, org_b, "P-vi", "080-4000-0001", ["vi", "ja"])
    _offer(world, org_b, "P-vi", ["vi"])
    _resident_asks_for_help(world)
    assert _alerts_to(world, INTERPRETER_PHONE) == []


def test_no_partner_interpreter_after_the_partnership_ended(world: World):
    org_b = _world_with_partner_interpreter(world)
    _end_partnership(world, org_b)
    _resident_asks_for_help(world)
    assert _alerts_to(world, INTERPRETER_PHONE) == []


def test_no_partner_interpreter_after_the_offer_is_withdrawn(world: World):
    org_b = _partner(world)
    _partner_member(world, org_b, "P-vi", "080-4000-0001", ["vi", "ja"])
    offer = _offer(world, org_b, "P-vi", ["vi"])
    _withdraw(world, offer)
    _resident_asks_for_help(world)
    assert _alerts_to(world, INTERPRETER_PHONE) == []


def test_an_offer_for_other_languages_alerts_nobody(world: World):
    org_b = _partner(world)
    _partner_member(world, org_b, "P-vi", "080-4000-0001", ["vi", "id", "ja"])
    _offer(world, org_b, "P-vi", ["id"])  # speaks Vietnamese, offered for Indonesian only
    _resident_asks_for_help(world)
    assert _alerts_to(world, INTERPRETER_PHONE) == []


# --------------------------------------------------------------------------- when it ends


def test_an_open_alert_to_an_ended_partners_interpreter_moves_the_chain_on(world: World):
    """The interpreter alone in the first step (no member assigned): the partnership ends,
    the sweep releases the alert and the case goes on to the staff on duty."""
    org_b = _world_with_partner_interpreter(world)
    world.member("S1", "080-3000-0009", kind=MemberKind.staff_on_duty)
    case = _resident_asks_for_help(world, assigned=False)
    assert len(_alerts_to(world, INTERPRETER_PHONE)) == 1
    assert _alerts_to(world, "+818030000009") == []
    _end_partnership(world, org_b)
    world.tick()
    with world.session() as s:
        case = s.get(Escalation, case.id)
        assert case.state == EscalationState.alerting and case.step_index == 1
        [partner_alert] = s.exec(
            select(Alert).where(Alert.member_id == world.members["P-vi"])
        ).all()
        assert partner_alert.state == AlertState.declined
        ended = s.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "escalation.partner_ended")
        ).one()
        assert ended.detail["partner_org"] == PARTNER
    assert len(_alerts_to(world, "+818030000009")) == 1
    # Their late "1" reaches nothing of the council now.
    world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")
    with world.session() as s:
        assert s.get(Escalation, case.id).acknowledged_by is None


def test_a_case_held_by_an_ended_partners_interpreter_is_handed_on(world: World):
    org_b = _world_with_partner_interpreter(world)
    world.member("S1", "080-3000-0009", kind=MemberKind.staff_on_duty)
    case = _resident_asks_for_help(world, assigned=False)
    world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")
    _end_partnership(world, org_b)
    world.tick()
    with world.session() as s:
        case = s.get(Escalation, case.id)
        assert case.acknowledged_by is None and case.state == EscalationState.alerting
    assert len(_alerts_to(world, "+818030000009")) == 1


@pytest.mark.parametrize("code_first", [False, True])
def test_the_partner_interpreters_result_closes_the_councils_case(world: World, code_first):
    _world_with_partner_interpreter(world)
    case = _resident_asks_for_help(world)
    world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")
    world.sms(INTERPRETER_PHONE, f"{case.case_code} 1" if code_first else f"3 {case.case_code}")
    with world.session() as s:
        case = s.get(Escalation, case.id)
        assert case.state == EscalationState.resolved
        assert case.outcome == ("safe" if code_first else "hospitalised")


def test_staff_see_the_partners_interpreter_on_the_case_and_its_timeline(world: World, admin):
    from tests.web.conftest import FormClient

    _world_with_partner_interpreter(world)
    case = _resident_asks_for_help(world)
    world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")
    forms = FormClient(world.client)
    assert forms.login(admin.email).status_code == 303
    page = world.client.get(f"/cases/{case.id}")
    assert page.status_code == 200
    named = f"連携先の通訳 通訳 P-vi（{PARTNER}）"
    # In the chain, as the holder, and on the timeline (alerted, will visit).
    assert page.text.count(named) >= 3, page.text


def test_a_call_for_help_on_a_silent_case_adds_the_partners_interpreter(world: World):
    """R1 stayed silent (a case alerting M1), then texts "2": the partner's interpreter
    joins the step now, and the council's own members are still alerted as before."""
    _world_with_partner_interpreter(world)
    world.silent_case("M1", language="vi", needs_interpreter=True)
    assert _alerts_to(world, INTERPRETER_PHONE) == []  # silence needs no interpreter
    world.sms(R1_PHONE, "2")
    [alert_sms] = _alerts_to(world, INTERPRETER_PHONE)
    assert alert_sms.organization_id == world.org_id
    with world.session() as s:
        case = s.exec(select(Escalation)).one()
        assert any(r.get("organization") == PARTNER for r in case.chain[case.step_index])
    world.sms(INTERPRETER_PHONE, "1")  # their only case: no code needed
    with world.session() as s:
        assert s.get(Escalation, case.id).acknowledged_by == world.members["P-vi"]


def test_a_reply_right_after_the_partnership_ended_reaches_nothing(world: World):
    """Before any sweep has released the alert: the ended partner's "1" takes nothing."""
    org_b = _world_with_partner_interpreter(world)
    case = _resident_asks_for_help(world)
    _end_partnership(world, org_b)
    world.sms(INTERPRETER_PHONE, f"1 {case.case_code}")  # replies only, no sweep
    with world.session() as s:
        case = s.get(Escalation, case.id)
        assert case.acknowledged_by is None and case.state == EscalationState.alerting
