"""Referrals between partners over the API (issue 21's acceptance): a council refers a
Vietnamese resident's call-back to a partner support group, with consent or anonymously."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.models import Role
from service.checkins.models import StaffTask, TaskKind
from service.registry.models import Resident, Site
from tests.conftest import Staff, make_staff

COUNCIL = "輪島市社会福祉協議会"
GROUP = "能登ベトナム人支援の会"
NAME = "Nguyễn Thị Lan"
PHONE = "+819012345678"
NOTES = "夜勤明けは電話に出ない。腰痛で通院中。"
UNIT = "B-12"


@pytest.fixture
def world(client, engine):
    return build_world(client, engine)


def build_world(client, engine):
    """Two organizations: a council with a Vietnamese resident's call-back, a support group."""
    council_admin = make_staff(client, engine, org=COUNCIL, role=Role.admin)
    council = make_staff(client, engine, org=COUNCIL, role=Role.coordinator)
    group_admin = make_staff(client, engine, org=GROUP, role=Role.admin)
    group = make_staff(client, engine, org=GROUP, role=Role.coordinator)
    with Session(engine) as s:
        site = Site(organization_id=council.org_id, name="宅田町第2団地")
        s.add(site)
        s.flush()
        resident = Resident(
            organization_id=council.org_id,
            name=NAME,
            phone=PHONE,
            language="vi",
            site_id=site.id,
            unit=UNIT,
            notes=NOTES,
            disability=True,
            pregnancy=True,
        )
        s.add(resident)
        s.flush()
        task = StaffTask(
            organization_id=council.org_id,
            kind=TaskKind.callback,
            resident_id=resident.id,
            language="vi",
        )
        s.add(task)
        s.commit()
        ids = {"resident": resident.id, "task": task.id, "site": site.id}
    return council_admin, council, group_admin, group, ids


def _partner_up(client, council_admin: Staff, group_admin: Staff) -> str:
    r = client.post(
        "/api/v1/partnerships",
        json={"organization_name": GROUP},
        headers=council_admin.headers,
    )
    assert r.status_code == 201, r.text
    partnership_id = r.json()["id"]
    r = client.post(f"/api/v1/partnerships/{partnership_id}/accept", headers=group_admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    return partnership_id


def _refer(client, council: Staff, group: Staff, ids, **extra) -> dict:
    body = {
        "partner_org_id": str(group.org_id),
        "source_kind": "callback",
        "source_id": str(ids["task"]),
        "reason": "language_support",
        **extra,
    }
    r = client.post("/api/v1/referrals", json=body, headers=council.headers)
    assert r.status_code == 201, r.text
    return r.json()


def _partner_audit_text(engine, org_id: uuid.UUID) -> str:
    with Session(engine) as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.organization_id == org_id)).all()
        return json.dumps(
            [[r.actor, r.action, r.entity_type, r.entity_id, r.fields, r.detail] for r in rows],
            ensure_ascii=False,
        )


def test_consented_referral_shows_only_referred_fields_and_closes(client, engine, world):
    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    r = client.post(
        f"/api/v1/residents/{ids['resident']}/referral-consents",
        json={"partner_org_id": str(group.org_id), "method": "verbal_phone"},
        headers=council.headers,
    )
    assert r.status_code == 201, r.text
    sent = _refer(client, council, group, ids)
    assert sent["shared"] == {
        "name": NAME,
        "phone": PHONE,
        "site": "宅田町第2団地",
        "language": "vi",
    }

    inbox = client.get("/api/v1/referrals-received", headers=group.headers)
    assert inbox.status_code == 200 and inbox.json()["count"] == 1
    one = client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers)
    assert one.status_code == 200
    view = one.json()
    assert view["person"] == {
        "name": NAME,
        "phone": PHONE,
        "site": "宅田町第2団地",
        "language": "vi",
    }
    assert view["language"] == "vi" and view["reason"] == "language_support"
    for body in (one.text, inbox.text):
        for secret in (NOTES, UNIT, "disability", "pregnancy", "notes", "health"):
            assert secret not in body
        for hidden in (str(ids["resident"]), str(ids["task"]), "resident_id", "task_id"):
            assert hidden not in body

    # The partner accepts, reaches the resident and records the outcome.
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/accept",
        json={"contact_name": "Trần Văn Minh", "contact_phone": "090-8765-4321"},
        headers=group.headers,
    )
    assert r.status_code == 200, r.text
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/contact",
        json={"note": "電話で話した"},
        headers=group.headers,
    )
    assert r.status_code == 200, r.text
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/outcome",
        json={"outcome": "helped", "note": "通訳付きで役所の手続きを済ませた"},
        headers=group.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"

    # The council sees every step on the resident's timeline and on the referral.
    timeline = client.get(
        f"/api/v1/residents/{ids['resident']}/timeline", headers=council.headers
    ).json()
    kinds = [e["kind"] for e in timeline if e["kind"].startswith("referral")]
    for kind in (
        "referral_consent",
        "referral_sent",
        "referral_accepted",
        "referral_contact",
        "referral_outcome",
    ):
        assert kind in kinds
    outcome = next(e for e in timeline if e["kind"] == "referral_outcome")
    assert outcome["detail"]["referral_outcome"] == "helped"
    mine = client.get(f"/api/v1/referrals/{sent['id']}", headers=council.headers).json()
    assert mine["outcome"] == "helped" and mine["contact_name"] == "Trần Văn Minh"
    assert mine["contact_phone"] == "+819087654321"

    # Closed: the partner gets 404 for the referral and for the resident.
    r = client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers)
    assert r.status_code == 404
    assert client.get("/api/v1/referrals-received", headers=group.headers).json()["count"] == 0
    r = client.get(f"/api/v1/residents/{ids['resident']}", headers=group.headers)
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/contact", json={}, headers=group.headers
    )
    assert r.status_code == 404

    # Both logs hold the partner's reads and changes.
    for org_id in (council.org_id, group.org_id):
        text = _partner_audit_text(engine, org_id)
        for action in ("partner_read", "referral_accept", "referral_outcome"):
            assert action in text
    assert NOTES not in _partner_audit_text(engine, group.org_id)


def test_without_consent_only_an_anonymous_request_reaches_the_partner(client, engine, world):
    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    r = client.post(
        "/api/v1/referrals",
        json={
            "partner_org_id": str(group.org_id),
            "source_kind": "callback",
            "source_id": str(ids["task"]),
            "reason": "language_support",
        },
        headers={**council.headers, "Accept-Language": "ja"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "anonymous"]
    assert "同意" in r.json()["detail"][0]["msg"]

    sent = _refer(client, council, group, ids, anonymous=True, area="輪島市")
    assert sent["shared"] == {} and sent["anonymous"] is True

    bodies = [client.get("/api/v1/referrals-received", headers=group.headers).text]
    bodies.append(
        client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers).text
    )
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/accept",
        json={"contact_name": "Trần Văn Minh", "contact_phone": "090-8765-4321"},
        headers=group.headers,
    )
    assert r.status_code == 200
    bodies.append(r.text)
    bodies.append(client.get("/api/v1/audit?limit=500", headers=group_admin.headers).text)
    bodies.append(_partner_audit_text(engine, group.org_id))
    view = json.loads(bodies[1])
    assert view["person"] is None and view["language"] == "vi" and view["area"] == "輪島市"
    for body in bodies:
        for secret in (NAME, PHONE, "9012345678", UNIT, NOTES, "宅田町", str(ids["resident"])):
            assert secret not in body

    # The council gets back the partner's person who can help.
    mine = client.get(f"/api/v1/referrals/{sent['id']}", headers=council.headers).json()
    assert mine["contact_name"] == "Trần Văn Minh"


def test_non_partners_and_ended_partnerships_get_404(client, engine, world):
    council_admin, council, group_admin, group, ids = world
    stranger = make_staff(client, engine, org="天草市社会福祉協議会", role=Role.coordinator)
    partnership_id = _partner_up(client, council_admin, group_admin)
    client.post(
        f"/api/v1/residents/{ids['resident']}/referral-consents",
        json={"partner_org_id": str(group.org_id), "method": "written", "share_notes": True},
        headers=council.headers,
    )
    sent = _refer(client, council, group, ids)
    assert sent["shared"]["notes"] == NOTES  # consented to notes: carried

    for path in (f"/api/v1/referrals-received/{sent['id']}", f"/api/v1/referrals/{sent['id']}"):
        assert client.get(path, headers=stranger.headers).status_code == 404
    # A referral to a non-partner is refused as if the organization were not there.
    r = client.post(
        "/api/v1/referrals",
        json={
            "partner_org_id": str(stranger.org_id),
            "source_kind": "callback",
            "source_id": str(ids["task"]),
            "reason": "other",
            "anonymous": True,
        },
        headers=council.headers,
    )
    assert r.status_code == 404

    r = client.post(f"/api/v1/partnerships/{partnership_id}/end", headers=council_admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "ended"
    r = client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers)
    assert r.status_code == 404
    assert client.get("/api/v1/referrals-received", headers=group.headers).json()["count"] == 0
    r = client.post(
        "/api/v1/referrals",
        json={
            "partner_org_id": str(group.org_id),
            "source_kind": "callback",
            "source_id": str(ids["task"]),
            "reason": "other",
            "anonymous": True,
        },
        headers=council.headers,
    )
    assert r.status_code == 404
    # Partners again: a referral left open under the ended partnership stays hidden.
    _partner_up(client, council_admin, group_admin)
    r = client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers)
    assert r.status_code == 404
    assert client.get("/api/v1/referrals-received", headers=group.headers).json()["count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "nonsense"},
        {"source_kind": "parcel"},
        {"language": "klingon"},
        {"source_id": "not-a-uuid"},
        {"anonymous": "yes"},
        {"area": ["x"]},
    ],
)
def test_bad_referral_input_is_a_named_422(client, engine, world, body):
    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    full = {
        "partner_org_id": str(group.org_id),
        "source_kind": "callback",
        "source_id": str(ids["task"]),
        "reason": "language_support",
        "anonymous": True,
        **body,
    }
    r = client.post(
        "/api/v1/referrals", json=full, headers={**council.headers, "Accept-Language": "ja"}
    )
    assert r.status_code == 422, r.text
    [field] = body
    assert any(d["loc"][-1] == field for d in r.json()["detail"])


def test_partner_steps_are_checked_and_translated(client, engine, world):
    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    sent = _refer(client, council, group, ids, anonymous=True)
    ja = {**group.headers, "Accept-Language": "ja"}
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/outcome", json={"outcome": "helped"}, headers=ja
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "status"]
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/accept", json={"contact_name": " "}, headers=ja
    )
    assert r.status_code == 422
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/accept",
        json={"contact_name": "Minh", "contact_phone": "12"},
        headers=ja,
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/partnerships", json={"organization_name": GROUP}, headers=council.headers
    )
    assert r.status_code == 403
    r = client.post(
        "/api/v1/partnerships", json={"organization_name": GROUP}, headers=council_admin.headers
    )
    assert r.status_code == 409


def test_closing_or_withdrawing_consent_ends_the_partners_access(client, engine, world):
    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    consent = client.post(
        f"/api/v1/residents/{ids['resident']}/referral-consents",
        json={"partner_org_id": str(group.org_id), "method": "verbal_in_person"},
        headers=council.headers,
    ).json()
    first = _refer(client, council, group, ids)
    second = _refer(client, council, group, ids)
    path = "/api/v1/referrals-received/{}"
    assert client.get(path.format(first["id"]), headers=group.headers).status_code == 200

    r = client.post(f"/api/v1/referrals/{first['id']}/close", headers=council.headers)
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert client.get(path.format(first["id"]), headers=group.headers).status_code == 404
    # The partner cannot close the council's referral, and the council cannot answer it.
    r = client.post(f"/api/v1/referrals/{second['id']}/close", headers=group.headers)
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/referrals-received/{second['id']}/accept",
        json={"contact_name": "X"},
        headers=council.headers,
    )
    assert r.status_code == 404

    r = client.post(f"/api/v1/referral-consents/{consent['id']}/withdraw", headers=council.headers)
    assert r.status_code == 200 and r.json()["withdrawn_at"]
    assert client.get(path.format(second["id"]), headers=group.headers).status_code == 404
    mine = client.get(f"/api/v1/referrals/{second['id']}", headers=council.headers).json()
    assert mine["status"] == "closed"
    # Withdrawn: a named referral is refused again, an anonymous one is still possible.
    r = client.post(
        "/api/v1/referrals",
        json={
            "partner_org_id": str(group.org_id),
            "source_kind": "callback",
            "source_id": str(ids["task"]),
            "reason": "other",
        },
        headers=council.headers,
    )
    assert r.status_code == 422
    consents = client.get(
        f"/api/v1/residents/{ids['resident']}/referral-consents", headers=council.headers
    ).json()
    assert consents["count"] == 1 and consents["data"][0]["method"] == "verbal_in_person"


def test_a_case_is_referred_and_its_steps_show_on_the_case(client, engine, world):
    from service.escalations.models import Escalation, EscalationReason

    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    with Session(engine) as s:
        case = Escalation(
            organization_id=council.org_id,
            resident_id=ids["resident"],
            reason=EscalationReason.needs_help,
            case_code="A7",
        )
        s.add(case)
        s.commit()
        case_id = case.id
    sent = _refer(
        client, council, group, ids, source_kind="case", source_id=str(case_id), anonymous=True
    )
    assert sent["escalation_id"] == str(case_id)
    listed = client.get(
        f"/api/v1/referrals?escalation_id={case_id}", headers=council.headers
    ).json()
    assert [row["id"] for row in listed["data"]] == [sent["id"]]
    timeline = client.get(
        f"/api/v1/residents/{ids['resident']}/timeline", headers=council.headers
    ).json()
    step = next(e for e in timeline if e["kind"] == "referral_sent")
    assert step["escalation_id"] == str(case_id)
    # Another organization's case, or a case id that does not exist, is a 404.
    r = client.post(
        "/api/v1/referrals",
        json={
            "partner_org_id": str(council.org_id),
            "source_kind": "case",
            "source_id": str(case_id),
            "reason": "other",
            "anonymous": True,
        },
        headers=group.headers,
    )
    assert r.status_code == 404


def test_an_inbox_item_is_referred_and_a_strangers_message_is_refused(client, engine, world):
    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    with Session(engine) as s:
        unclear = StaffTask(
            organization_id=council.org_id, kind=TaskKind.unclear, resident_id=ids["resident"]
        )
        stranger = StaffTask(organization_id=council.org_id, kind=TaskKind.unknown_sender)
        s.add_all([unclear, stranger])
        s.commit()
        unclear_id, stranger_id = unclear.id, stranger.id
    sent = _refer(
        client, council, group, ids, source_kind="inbox", source_id=str(unclear_id), anonymous=True
    )
    assert sent["task_id"] == str(unclear_id) and sent["source_kind"] == "inbox"
    ja = {**council.headers, "Accept-Language": "ja"}
    base = {"partner_org_id": str(group.org_id), "reason": "other", "anonymous": True}
    r = client.post(
        "/api/v1/referrals",
        json={**base, "source_kind": "callback", "source_id": str(unclear_id)},
        headers=ja,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "source_kind"]
    assert "折り返し" in r.json()["detail"][0]["msg"]
    r = client.post(
        "/api/v1/referrals",
        json={**base, "source_kind": "inbox", "source_id": str(stranger_id)},
        headers=ja,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "source_id"]


def test_an_anonymous_request_without_an_area_names_no_housing_site(client, engine, world):
    """The resident's housing site is not put in an anonymous request by default: with the
    language it can single one resident out (a Vietnamese speaker in one small site)."""
    council_admin, council, group_admin, group, ids = world
    _partner_up(client, council_admin, group_admin)
    sent = _refer(client, council, group, ids, anonymous=True)
    body = client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers).text
    view = json.loads(body)
    assert view["person"] is None and view["area"] is None and view["language"] == "vi"
    assert "宅田町" not in body and "宅田町" not in _partner_audit_text(engine, group.org_id)


@pytest.mark.parametrize("ended_by", ["council", "group"])
def test_ending_the_partnership_closes_its_open_referrals_for_the_council(
    client, engine, world, ended_by
):
    """Either side ends the partnership: the council's open referral under it closes (and
    says so on the resident's timeline) instead of waiting for the partner forever."""
    council_admin, council, group_admin, group, ids = world
    partnership_id = _partner_up(client, council_admin, group_admin)
    sent = _refer(client, council, group, ids, anonymous=True, area="輪島市")
    admin = council_admin if ended_by == "council" else group_admin
    r = client.post(f"/api/v1/partnerships/{partnership_id}/end", headers=admin.headers)
    assert r.status_code == 200, r.text

    mine = client.get(f"/api/v1/referrals/{sent['id']}", headers=council.headers).json()
    assert mine["status"] == "closed"
    timeline = client.get(
        f"/api/v1/residents/{ids['resident']}/timeline", headers=council.headers
    ).json()
    closed = [e for e in timeline if e["kind"] == "referral_closed"]
    assert len(closed) == 1 and closed[0]["detail"]["why"] == "partnership_ended"
    with Session(engine) as s:
        for org_id in (council.org_id, group.org_id):
            actions = s.exec(
                select(AuditEntry.action).where(
                    AuditEntry.organization_id == org_id,
                    AuditEntry.entity_id == sent["id"],
                )
            ).all()
            assert "referral_close" in actions
