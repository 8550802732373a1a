"""A resident's ordered channels through the API, and the LINE link code staff issue."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.registry.channels import LineLinkCode
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
