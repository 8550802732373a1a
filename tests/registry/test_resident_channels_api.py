"""A resident's ordered channels through the API, and the LINE link code staff issue."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.common import utcnow
from service.registry.channels import LineLinkCode
from service.registry.models import Resident
from service.telephony.app_inbound import link_line_user
from tests.registry.test_api import _engine, _resident


def test_channels_are_kept_in_the_residents_order(client, coordinator):
    resident = _resident(client, coordinator, channels=["LINE", "whatsapp", "sms", "voice"])
    assert resident["channels"] == ["line", "whatsapp", "sms", "voice"]
    r = client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers=coordinator.headers,
        json={"channels": ["whatsapp", "sms"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["channels"] == ["whatsapp", "sms"]
    assert "line_user_id" not in r.json()  # linked only through LINE's signed webhook
    assert r.json()["line_linked"] is False
    # Nobody sets the LINE id through the API: the field is not part of it.
    forged = client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers=coordinator.headers,
        json={"line_user_id": "U" + "1" * 32},
    )
    assert forged.status_code in (200, 422)
    with Session(_engine(client)) as s:
        assert s.get(Resident, uuid.UUID(resident["id"])).line_user_id is None


def test_a_resident_linked_by_code_shows_as_linked(client, coordinator):
    resident = _resident(client, coordinator, channels=["line", "sms"])
    code = client.post(
        f"/api/v1/residents/{resident['id']}/line-link-code", headers=coordinator.headers
    ).json()["code"]
    with Session(_engine(client)) as s:
        assert link_line_user(s, code=code.lower(), user_id="U" + "2" * 32, now=utcnow()) is False
        assert link_line_user(s, code=code, user_id="U" + "2" * 32, now=utcnow())
        s.commit()
    shown = client.get(f"/api/v1/residents/{resident['id']}", headers=coordinator.headers)
    assert shown.json()["line_linked"] is True


def test_an_unknown_channel_is_a_named_translated_error_and_nothing_changes(client, coordinator):
    resident = _resident(client, coordinator, channels=["line", "sms"])
    r = client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers={**coordinator.headers, "Accept-Language": "en"},
        json={"channels": ["line", "fax"]},
    )
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert any(
        d["loc"][:2] == ["body", "channels"]
        and "unknown channel" in d["msg"]
        and "whatsapp" in d["msg"]
        for d in detail
    ), detail
    ja = client.patch(
        f"/api/v1/residents/{resident['id']}",
        headers={**coordinator.headers, "Accept-Language": "ja"},
        json={"channels": ["fax"]},
    )
    assert ja.status_code == 422 and "連絡方法が分かりません" in ja.text
    again = client.get(f"/api/v1/residents/{resident['id']}", headers=coordinator.headers)
    assert again.json()["channels"] == ["line", "sms"]


def test_a_line_link_code_is_issued_for_the_callers_own_resident_only(
    client, coordinator, other_org_admin
):
    resident = _resident(client, coordinator)
    r = client.post(
        f"/api/v1/residents/{resident['id']}/line-link-code", headers=coordinator.headers
    )
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert len(code) == 8
    with Session(_engine(client)) as s:
        link = s.exec(select(LineLinkCode).where(LineLinkCode.code == code)).one()
        assert str(link.resident_id) == resident["id"]
        assert s.exec(select(AuditEntry).where(AuditEntry.entity_type == "line_link_code")).first()
    other = client.post(
        f"/api/v1/residents/{resident['id']}/line-link-code", headers=other_org_admin.headers
    )
    assert other.status_code == 404
    missing = client.post(
        f"/api/v1/residents/{uuid.uuid4()}/line-link-code", headers=coordinator.headers
    )
    assert missing.status_code == 404
