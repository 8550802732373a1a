"""Inbound SMS routed by the number they were sent to, with two organizations on one
installation: real database (SQLite, and PostgreSQL in CI), signed webhooks, the real
dashboard and API. Defect 6 of issue 17: "母が倒れました。助けてください" from a number in no
registry was stored for no organization, in no inbox, and its sender got no answer.
"""

# The `world` fixture comes from tests/checkins/conftest.py and the translator's wire from
# tests/translation/conftest.py; test parameters with their names shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from i18n.render import render
from scheduler.jobs import process_replies
from service.audit.models import AuditEntry
from service.audit.service import Actor
from service.auth.models import Role
from service.checkins import routing
from service.checkins.models import CheckInState, StaffTask, TaskKind
from service.config import get_settings
from service.registry.models import OrganizationSender
from service.telephony.models import InboundMessage
from service.translation.models import Translation
from service.web.board import open_task_count
from tests.checkins.conftest import World, world  # noqa: F401
from tests.conftest import TEST_PASSWORD, Staff, make_staff
from tests.telephony.worlds import MOBILE, build_checkins, checkin_of, messages_in
from tests.translation.conftest import deepl, deepl_wire  # noqa: F401
from tests.translation.wire import Memory
from tests.web.conftest import FormClient

ORG_A = "輪島市社会福祉協議会"  # the world's own organization
ORG_B = "珠洲市社会福祉協議会"
NUMBER_A = "+815011112222"
NUMBER_B = "+815033334444"
NOBODYS_NUMBER = "+815099998888"
SERVICE_B = "MG" + "b" * 32
STRANGER = "+819087654321"
CRY = "母が倒れました。助けてください"


class TwoOrgs:
    """Organization A (the world's) and B, each with an admin, a coordinator, its own
    number and a dashboard session of its own (a separate cookie jar)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.admin_a = make_staff(world.client, world.engine, org=ORG_A, role=Role.admin)
        self.admin_b = make_staff(world.client, world.engine, org=ORG_B, role=Role.admin)
        self.coord_a = make_staff(world.client, world.engine, org=ORG_A, role=Role.coordinator)
        self.coord_b = make_staff(world.client, world.engine, org=ORG_B, role=Role.coordinator)
        assert self.admin_a.org_id == world.org_id
        self.org_b = self.admin_b.org_id
        for admin, number in ((self.admin_a, NUMBER_A), (self.admin_b, NUMBER_B)):
            response = self.patch(admin, {"sender_numbers": [number]})
            assert response.status_code == 200, response.text
        self.dash_a = self._dashboard(self.coord_a)
        self.dash_b = self._dashboard(self.coord_b)

    def patch(self, staff: Staff, body: dict[str, Any]) -> Any:
        return self.world.client.patch("/api/v1/organization", json=body, headers=staff.headers)

    def _dashboard(self, staff: Staff) -> FormClient:
        forms = FormClient(TestClient(self.world.client.app))
        assert forms.login(staff.email, TEST_PASSWORD).status_code == 303
        return forms

    def sms(self, body: str, to: str, sender: str = STRANGER, **extra: str) -> list[str]:
        self.world._sms_counter += 1
        params = {
            "MessageSid": f"SM{self.world._sms_counter:032d}",
            "From": sender,
            "To": to,
            "Body": body,
            **extra,
        }
        response = self.world.post("/twilio/sms", params)
        assert response.status_code == 200, response.text
        return messages_in(response.text)

    def inbound(self, body: str) -> tuple[InboundMessage, StaffTask]:
        with self.world.session() as s:
            message = s.execute(
                select(InboundMessage).where(InboundMessage.body == body)
            ).scalar_one()
            task = s.execute(
                select(StaffTask).where(StaffTask.inbound_id == message.id)
            ).scalar_one()
            return message, task


@pytest.fixture
def two(world: World) -> TwoOrgs:
    return TwoOrgs(world)


def _stranger_answer() -> str:
    return "\n".join(render("resident.reply.received", code) for code in ("ja", "en"))


def _inbox(forms: FormClient) -> str:
    page = forms.client.get("/inbox")
    assert page.status_code == 200
    return page.text


# --- The rules, as tables -----------------------------------------------------------------------

_A, _B = uuid.UUID(int=1), uuid.UUID(int=2)


@pytest.mark.parametrize(
    ("to_owner", "service_owner", "known_to", "only", "expected"),
    [
        (_A, None, (), None, _A),  # the number it was sent to decides
        (_A, _B, (), None, _A),  # a number is more precise than a Messaging Service
        (None, _B, (), None, _B),
        (None, None, (_B,), None, _B),  # known to one organization only
        (None, None, (_A, _B), None, None),  # known to several: unrouted
        (_A, None, (_A, _B), None, _A),  # ... unless the number says whose
        (None, None, (), _A, _A),  # the installation's only organization
        (None, None, (), None, None),  # nobody's: unrouted, in every inbox
    ],
)
def test_decide_organization(to_owner, service_owner, known_to, only, expected):
    assert (
        routing.decide_organization(
            to_owner=to_owner,
            service_owner=service_owner,
            sender_organizations=known_to,
            only_organization=only,
        )
        == expected
    )


_DEFAULT = routing.Sender(from_number="+815000000000", messaging_service_sid="MG" + "0" * 32)


@pytest.mark.parametrize(
    ("channel", "numbers", "service", "expected"),
    [
        ("sms", [NUMBER_A], SERVICE_B, routing.Sender(messaging_service_sid=SERVICE_B)),
        ("sms", [NUMBER_A, NUMBER_B], None, routing.Sender(from_number=NUMBER_A)),
        ("sms", [], None, _DEFAULT),
        ("call", [NUMBER_A], SERVICE_B, routing.Sender(from_number=NUMBER_A)),
        ("call", [], SERVICE_B, routing.Sender(from_number="+815000000000")),
    ],
)
def test_choose_sender(channel, numbers, service, expected):
    chosen = routing.choose_sender(
        channel, numbers=numbers, messaging_service_sid=service, default=_DEFAULT
    )
    assert chosen == expected


def test_each_organizations_senders_load_in_one_query(two: TwoOrgs):
    assert two.patch(two.admin_b, {"messaging_service_sid": SERVICE_B}).status_code == 200
    with two.world.session() as s:
        found = routing.organization_senders(s, [two.world.org_id, two.org_b, uuid.uuid4()])
    assert found == {two.world.org_id: ([NUMBER_A], None), two.org_b: ([NUMBER_B], SERVICE_B)}


# --- Sender numbers -----------------------------------------------------------------------------


def test_sender_numbers_are_set_in_any_spelling_shown_and_audited(two: TwoOrgs):
    response = two.patch(
        two.admin_a,
        {
            "sender_numbers": ["050-1111-2222", "０５０－５５５５－６６６６"],
            "messaging_service_sid": None,
        },
    )
    assert response.status_code == 200, response.text
    assert sorted(response.json()["sender_numbers"]) == [NUMBER_A, "+815055556666"]
    shown = two.world.client.get("/api/v1/organization", headers=two.coord_a.headers).json()
    assert sorted(shown["sender_numbers"]) == [NUMBER_A, "+815055556666"]
    assert shown["messaging_service_sid"] is None
    with two.world.session() as s:
        entries = s.execute(
            select(AuditEntry).where(
                AuditEntry.entity_type == "organization",
                AuditEntry.organization_id == two.world.org_id,
            )
        ).scalars()
        changes = [e for e in entries if "sender_numbers" in (e.fields or [])]
    assert len(changes) == 2  # the fixture's, then this one
    assert changes[-1].detail["before"]["sender_numbers"] == [NUMBER_A]
    # A coordinator cannot change them.
    assert two.patch(two.coord_a, {"sender_numbers": []}).status_code == 403


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"sender_numbers": ["12ab"]}, "invalid sender number '12ab'"),
        ({"sender_numbers": ["03-1234"]}, "invalid sender number '03-1234'"),
        ({"sender_numbers": [""]}, "cannot be blank"),
        ({"sender_numbers": "+815011112222"}, '"loc":["body","sender_numbers"]'),
        ({"sender_numbers": None}, '"loc":["body","sender_numbers"]'),
        ({"messaging_service_sid": "MG123"}, "invalid Messaging Service SID 'MG123'"),
    ],
)
def test_a_bad_number_or_service_is_a_clear_422(two: TwoOrgs, body: dict[str, Any], words: str):
    response = two.patch(two.admin_a, body)
    assert response.status_code == 422, response.text
    assert words in response.text


def test_a_number_or_service_of_another_organization_is_refused_naming_it(two: TwoOrgs):
    response = two.patch(two.admin_b, {"sender_numbers": [NUMBER_B, "050-1111-2222"]})
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "sender_numbers"]
    assert problem["msg"] == f"{NUMBER_A} already belongs to another organization"
    assert two.patch(two.admin_b, {"messaging_service_sid": SERVICE_B}).status_code == 200
    response = two.patch(two.admin_a, {"messaging_service_sid": SERVICE_B.upper()[:2] + "b" * 32})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "messaging_service_sid"]
    with two.world.session() as s:
        owners = dict(
            s.execute(select(OrganizationSender.address, OrganizationSender.organization_id)).all()
        )
    assert owners == {NUMBER_A: two.world.org_id, NUMBER_B: two.org_b, SERVICE_B: two.org_b}


# --- Routing ------------------------------------------------------------------------------------


def test_a_strangers_cry_to_a_number_reaches_only_that_inbox_and_is_answered(two: TwoOrgs):
    assert two.sms(CRY, to=NUMBER_A) == [_stranger_answer()]
    message, task = two.inbound(CRY)
    assert message.organization_id == task.organization_id == two.world.org_id
    assert message.classification == "help" and message.needs_staff
    assert task.kind == TaskKind.unknown_sender

    page_a = _inbox(two.dash_a)
    assert CRY in page_a and STRANGER in page_a
    assert "緊急：助けを求めています" in page_a and "data-urgent" in page_a
    assert "振り分け先不明" not in page_a  # routed, not unrouted
    page_b = _inbox(two.dash_b)
    assert CRY not in page_b and STRANGER not in page_b

    # B cannot reach it through the API either: not listed, not claimable, not answerable.
    client, b = two.world.client, two.coord_b.headers
    assert str(task.id) not in client.get("/api/v1/tasks", headers=b).text
    assert client.get("/api/v1/inbound/unrouted", headers=b).json() == []
    assert client.post(f"/api/v1/tasks/{task.id}/claim", headers=b).status_code == 404
    answer = {"ready": "resident.answer.call_soon"}
    assert client.post(f"/api/v1/tasks/{task.id}/answer", json=answer, headers=b).status_code == 404
    assert client.get(f"/api/v1/inbound/{message.id}/translation", headers=b).status_code == 404
    close = two.dash_b.post(f"/inbox/{task.id}/close")
    assert close.status_code == 303
    with two.world.session() as s:
        assert s.get(StaffTask, task.id).closed_at is None  # type: ignore[union-attr]
    # A claim by A of its own routed message is not a thing: it was never unrouted.
    assert (
        client.post(f"/api/v1/tasks/{task.id}/claim", headers=two.coord_a.headers).status_code
        == 404
    )


def test_a_message_through_a_messaging_service_goes_to_its_owner(two: TwoOrgs):
    assert two.patch(two.admin_b, {"messaging_service_sid": SERVICE_B}).status_code == 200
    two.sms("どなたか教えてください", to=NOBODYS_NUMBER, MessagingServiceSid=SERVICE_B)
    message, task = two.inbound("どなたか教えてください")
    assert message.organization_id == task.organization_id == two.org_b
    # The number it was sent to is the more precise of the two.
    two.sms("番号が先です", to=NUMBER_A, MessagingServiceSid=SERVICE_B)
    assert two.inbound("番号が先です")[0].organization_id == two.world.org_id


def test_to_a_number_nobody_owns_it_is_unrouted_in_every_inbox_until_claimed(two: TwoOrgs):
    answer = two.sms(CRY, to=NOBODYS_NUMBER)
    assert answer == [_stranger_answer()]
    assert "119" in answer[0] and "メッセージを受け取りました" in answer[0]
    assert "We received your message" in answer[0]
    message, task = two.inbound(CRY)
    assert message.organization_id is None and task.organization_id is None

    for dash in (two.dash_a, two.dash_b):
        page = _inbox(dash)
        assert CRY in page and "振り分け先不明" in page and "緊急：助けを求めています" in page
        assert f"/inbox/{task.id}/claim" in page
        assert f"/inbox/{task.id}/answer" not in page  # claim first
    client = two.world.client
    for staff in (two.coord_a, two.coord_b):
        listed = client.get("/api/v1/inbound/unrouted", headers=staff.headers).json()
        assert [(m["task_id"], m["body"], m["urgent"]) for m in listed] == [
            (str(task.id), CRY, True)
        ]
    # Unclaimed, it is nobody's to answer or close.
    answer_body = {"ready": "resident.answer.call_soon"}
    assert (
        client.post(
            f"/api/v1/tasks/{task.id}/answer", json=answer_body, headers=two.coord_a.headers
        ).status_code
        == 404
    )

    claimed = two.dash_a.post(f"/inbox/{task.id}/claim")
    assert claimed.status_code == 303
    message, task = two.inbound(CRY)
    assert message.organization_id == task.organization_id == two.world.org_id
    assert message.claimed_at is not None
    with two.world.session() as s:
        [entry] = s.execute(select(AuditEntry).where(AuditEntry.action == "claim")).scalars()
    assert entry.organization_id == two.world.org_id
    assert entry.entity_id == str(message.id)

    assert CRY in _inbox(two.dash_a) and f"/inbox/{task.id}/answer" in _inbox(two.dash_a)
    assert CRY not in _inbox(two.dash_b)
    assert client.get("/api/v1/inbound/unrouted", headers=two.coord_b.headers).json() == []
    refused = client.post(f"/api/v1/tasks/{task.id}/claim", headers=two.coord_b.headers)
    assert refused.status_code == 409
    assert "another organization has already claimed this message" in refused.text
    again = client.post(f"/api/v1/tasks/{task.id}/claim", headers=two.coord_a.headers)
    assert again.status_code == 409 and "already claimed" in again.text
    assert two.dash_b.post(f"/inbox/{task.id}/claim").status_code == 303
    assert "別の団体が引き受けました" in _inbox(two.dash_b)
    # Now A's, it can be answered by A, and B still cannot.
    sent = client.post(
        f"/api/v1/tasks/{task.id}/answer", json=answer_body, headers=two.coord_a.headers
    )
    assert sent.status_code == 201, sent.text
    assert (
        client.post(
            f"/api/v1/tasks/{task.id}/answer", json=answer_body, headers=two.coord_b.headers
        ).status_code
        == 404
    )


def test_a_claim_by_api_and_a_viewer_cannot_claim(two: TwoOrgs):
    two.sms("誰か", to=NOBODYS_NUMBER)
    _message, task = two.inbound("誰か")
    viewer = make_staff(two.world.client, two.world.engine, org=ORG_B, role=Role.viewer)
    client = two.world.client
    assert client.post(f"/api/v1/tasks/{task.id}/claim", headers=viewer.headers).status_code == 403
    response = client.post(f"/api/v1/tasks/{task.id}/claim", headers=two.coord_b.headers)
    assert response.status_code == 200, response.text
    assert response.json()["task_id"] == str(task.id)
    assert two.inbound("誰か")[0].organization_id == two.org_b
    assert (
        client.post(f"/api/v1/tasks/{uuid.uuid4()}/claim", headers=two.coord_b.headers).status_code
        == 404
    )


def test_answers_to_an_unrouted_sender_stop_at_the_per_recipient_cap(two: TwoOrgs):
    cap = get_settings().sms_per_recipient_per_hour
    answers = [two.sms(f"返事ください {i}", to=NOBODYS_NUMBER) for i in range(cap + 2)]
    assert answers[:cap] == [[_stranger_answer()]] * cap
    assert answers[cap:] == [[], []]  # an auto-responder cannot start a loop
    with two.world.session() as s:
        stored = s.execute(select(InboundMessage).where(InboundMessage.from_phone == STRANGER))
        assert len(stored.all()) == cap + 2  # every message is kept


def test_a_resident_of_a_texting_as_number_is_still_a_reply(two: TwoOrgs):
    cw = build_checkins(two.world)
    assert two.sms("1", to=NUMBER_A, sender=MOBILE) == [
        render("resident.reply.ok", "ja", org=ORG_A)
    ]
    process_replies(two.world.ctx)
    assert checkin_of(two.world.engine, cw.sms_resident).state == CheckInState.ok
    with two.world.session() as s:
        message = s.execute(select(InboundMessage).where(InboundMessage.from_phone == MOBILE))
        [row] = message.scalars()
        assert (row.organization_id, row.resident_id) == (two.world.org_id, cw.sms_resident)
        assert not s.execute(select(StaffTask)).all()


def test_a_resident_texting_the_other_organizations_number_is_still_their_reply(two: TwoOrgs):
    """Whose reply it is follows the sender, as before: a resident who saved the wrong
    number is not made a stranger, and nothing of theirs reaches the other organization."""
    cw = build_checkins(two.world)
    two.sms("1", to=NUMBER_B, sender=MOBILE)
    process_replies(two.world.ctx)
    assert checkin_of(two.world.engine, cw.sms_resident).state == CheckInState.ok
    assert "受信箱は空です" in _inbox(two.dash_b)
    with two.world.session() as s:
        [row] = s.execute(
            select(InboundMessage).where(InboundMessage.from_phone == MOBILE)
        ).scalars()
        assert row.organization_id == two.world.org_id


def test_a_member_texting_is_still_a_member_reply(two: TwoOrgs):
    member_phone = "+819055550001"
    two.world.member("m1", member_phone)
    two.sms("1", to=NUMBER_A, sender=member_phone)
    with two.world.session() as s:
        [row] = s.execute(
            select(InboundMessage).where(InboundMessage.from_phone == member_phone)
        ).scalars()
        assert row.organization_id == two.world.org_id and row.member_id is not None
        assert not s.execute(select(StaffTask)).all()


# --- Translation --------------------------------------------------------------------------------

MEMORY = {
    "my mother fell, please come": ("母が転びました。来てください", "en"),
    "who is this?": ("どなたですか?", "en"),
}


def test_the_translation_job_translates_a_routed_strangers_message_and_a_claimed_one(
    two: TwoOrgs, deepl_wire, deepl
):
    two.sms("my mother fell, please come", to=NUMBER_A)
    two.sms("who is this?", to=NOBODYS_NUMBER)
    memory = Memory(MEMORY).on_deepl(deepl_wire)
    two.world.ctx.translator = deepl
    two.world.tick()
    # The routed one is translated for A; the unrouted one goes to no translator yet.
    assert [text for batch in memory.sent for text in batch] == ["my mother fell, please come"]
    with two.world.session() as s:
        [row] = s.execute(select(Translation)).scalars()
        assert (row.organization_id, row.status) == (two.world.org_id, "done")
    _message, task = two.inbound("who is this?")
    assert two.dash_b.post(f"/inbox/{task.id}/claim").status_code == 303
    two.world.tick()
    assert [text for batch in memory.sent for text in batch][-1] == "who is this?"
    with two.world.session() as s:
        rows = {r.organization_id: r for r in s.execute(select(Translation)).scalars()}
    assert rows[two.org_b].status == "done" and rows[two.org_b].translated_text == "どなたですか?"
    assert "どなたですか?" in _inbox(two.dash_b) and "どなたですか?" not in _inbox(two.dash_a)


# --- The command line ---------------------------------------------------------------------------

MIMAMORI = str(Path(sys.executable).parent / "mimamori")


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MIMAMORI, "org", "senders", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", "MIMAMORI_DATABASE_URL": database_url},
    )


def test_the_command_line_sets_and_refuses_sender_numbers(two: TwoOrgs, database_url: str):
    added = _cli(database_url, "add", "050-7777-8888", "--org", ORG_A)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "+815077778888" in added.stdout and NUMBER_A in added.stdout
    clash = _cli(database_url, "add", "050-7777-8888", "--org", ORG_B)
    assert clash.returncode == 1
    assert "+815077778888 already belongs to another organization" in clash.stderr
    bad = _cli(database_url, "add", "12ab", "--org", ORG_B)
    assert bad.returncode == 1 and "invalid sender number '12ab'" in bad.stderr
    removed = _cli(database_url, "remove", "050-7777-8888", "--org", ORG_A)
    assert removed.returncode == 0 and "+815077778888" not in removed.stdout
    service = _cli(database_url, "service", SERVICE_B, "--org", ORG_B)
    assert service.returncode == 0 and SERVICE_B in service.stdout
    with two.world.session() as s:
        entries = s.execute(
            select(AuditEntry).where(AuditEntry.actor.startswith("cli:"))  # type: ignore[union-attr]
        ).scalars()
        assert len(list(entries)) == 3


def test_an_unrouted_cry_counts_in_every_boards_inbox_until_claimed(two: TwoOrgs):
    """The board's inbox count is what staff glance at first; an urgent unrouted message
    must be counted there, for every organization, not only listed on the inbox page."""
    with two.world.session() as s:
        before = {org: open_task_count(s, org) for org in (two.world.org_id, two.org_b)}
    two.sms(CRY, to=NOBODYS_NUMBER)
    _, task = two.inbound(CRY)
    with two.world.session() as s:
        assert {org: open_task_count(s, org) for org in before} == {
            org: count + 1 for org, count in before.items()
        }
    assert two.dash_a.post(f"/inbox/{task.id}/claim").status_code == 303
    with two.world.session() as s:
        assert open_task_count(s, two.world.org_id) == before[two.world.org_id] + 1
        assert open_task_count(s, two.org_b) == before[two.org_b]


def test_a_call_for_help_from_someone_who_moved_reaches_the_council_they_live_in(two: TwoOrgs):
    """The same phone is registered with A, who marked the resident moved out, and with B,
    where they live now. Their call for help opens a case in B, never at A's old address;
    so does one sent to A's old number."""
    from datetime import timedelta

    from service.escalations.models import Escalation
    from service.registry import service as registry
    from service.registry.models import Resident, ResidentCreate, ResidentStatus

    phone = "+819011112222"
    world = two.world
    old = world.resident("RA", "090-1111-2222")
    with world.session() as s:
        new = registry.create_resident(
            session=s,
            organization_id=two.org_b,
            data=ResidentCreate(external_id="RB", name="住民 RB", phone=phone, language="ja"),
            actor=Actor(label="test"),
        ).id
        s.commit()
        resident = s.get(Resident, old)
        resident.status = ResidentStatus.moved_out  # the latest change of the two records
        resident.updated_at = s.get(Resident, new).updated_at + timedelta(seconds=1)
        s.add(resident)
        s.commit()
    for n, to in enumerate((NUMBER_B, NUMBER_A)):
        two.sms(f"助けてください。家が傾いています {n}", to=to, sender=phone)
        process_replies(world.ctx)
        with world.session() as s:
            cases = s.execute(select(Escalation.resident_id)).scalars().all()
        assert set(cases) == {new}, (to, cases)
