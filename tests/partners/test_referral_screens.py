"""The dashboard's partnership and referral screens (issue 21): the partner's page carries
only the referred fields, the council's resident page shows each step, and a closed
referral is gone for the partner."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from service.partners.models import Partnership
from service.referrals.models import Referral
from tests.partners.test_referrals_api import NAME, NOTES, PHONE, UNIT, build_world
from tests.web.conftest import FormClient


@pytest.fixture
def referral_world(client, engine):
    return build_world(client, engine)


def _forms(client: TestClient, email: str) -> FormClient:
    forms = FormClient(client)
    assert forms.login(email).status_code == 303
    return forms


def _partnership_by_screens(app_client, engine, council_admin, group_admin) -> None:
    from service.app import create_app

    council = _forms(app_client, council_admin.email)
    r = council.post("/partners/invite", {"organization_name": "能登ベトナム人支援の会"})
    assert r.status_code == 303
    with TestClient(create_app()) as other:
        group = _forms(other, group_admin.email)
        page = other.get("/partners")
        assert "輪島市社会福祉協議会" in page.text and "承認する" in page.text
        with Session(engine) as s:
            row = s.exec(select(Partnership)).one()
        assert group.post(f"/partners/{row.id}/accept").status_code == 303
        assert "有効" in other.get("/partners").text or "Active" in other.get("/partners").text


def test_refer_with_consent_then_partner_answers_on_screens(client, engine, referral_world):
    council_admin, council, group_admin, group, ids = referral_world
    _partnership_by_screens(client, engine, council_admin, group_admin)
    from service.app import create_app

    forms = _forms(client, council.email)
    inbox = client.get("/inbox")
    assert f"/referrals/new?source_kind=callback&amp;source_id={ids['task']}" in inbox.text
    page = client.get(f"/referrals/new?source_kind=callback&source_id={ids['task']}")
    assert page.status_code == 200 and "連携団体に紹介する" in page.text
    r = forms.post(
        "/referrals/new",
        {
            "source_kind": "callback",
            "source_id": str(ids["task"]),
            "partner_org_id": str(group.org_id),
            "reason": "language_support",
            "language": "vi",
            "mode": "consent",
            "method": "verbal_phone",
        },
    )
    assert r.status_code == 303, r.text
    referral_id = r.headers["location"].rsplit("/", 1)[-1]

    with TestClient(create_app()) as other:
        partner = _forms(other, group.email)
        inbox = other.get("/referrals")
        assert f"/referrals/received/{referral_id}" in inbox.text
        page = other.get(f"/referrals/received/{referral_id}")
        assert page.status_code == 200
        assert NAME in page.text and PHONE in page.text and "宅田町第2団地" in page.text
        for secret in (NOTES, UNIT, "disability", "pregnancy", str(ids["resident"])):
            assert secret not in page.text
        r = partner.post(
            f"/referrals/received/{referral_id}/accept",
            {"contact_name": "Trần Văn Minh", "contact_phone": "090-8765-4321"},
        )
        assert r.status_code == 303
        r = partner.post(
            f"/referrals/received/{referral_id}/outcome", {"outcome": "helped", "note": "済"}
        )
        assert r.status_code == 303
        assert other.get(f"/referrals/received/{referral_id}").status_code == 404
        assert f"/referrals/received/{referral_id}" not in other.get("/referrals").text

    resident_page = client.get(f"/residents/{ids['resident']}")
    assert resident_page.status_code == 200
    for kind in ("referral_sent", "referral_accepted", "referral_outcome"):
        assert f'data-kind="{kind}"' in resident_page.text
    assert "連携先が結果を記録した" in resident_page.text and "Trần Văn Minh" in resident_page.text
    sent = client.get(f"/referrals/{referral_id}")
    assert sent.status_code == 200 and "支援できた" in sent.text
    # The council's audit screen names the partner's reads and steps in words.
    _forms(client, council_admin.email)
    audit = client.get("/audit?entity_type=referral")
    assert "連携先が閲覧" in audit.text and "紹介：結果を記録" in audit.text


def test_anonymous_request_on_screens_carries_nothing_personal(client, engine, referral_world):
    council_admin, council, group_admin, group, ids = referral_world
    _partnership_by_screens(client, engine, council_admin, group_admin)
    from service.app import create_app

    forms = _forms(client, council.email)
    r = forms.post(
        "/referrals/new",
        {
            "source_kind": "callback",
            "source_id": str(ids["task"]),
            "partner_org_id": str(group.org_id),
            "reason": "language_support",
            "language": "vi",
            "mode": "anonymous",
            "area": "輪島市",
        },
    )
    assert r.status_code == 303
    referral_id = r.headers["location"].rsplit("/", 1)[-1]
    with TestClient(create_app()) as other:
        _forms(other, group.email)
        texts = [other.get("/referrals").text, other.get(f"/referrals/received/{referral_id}").text]
        assert "匿名の依頼" in texts[1] and "輪島市" in texts[1]
        for text in texts:
            for secret in (NAME, PHONE, "9012345678", UNIT, NOTES, "宅田町"):
                assert secret not in text


def test_bad_referral_form_is_a_translated_message_and_saves_nothing(
    client, engine, referral_world
):
    council_admin, council, group_admin, group, ids = referral_world
    _partnership_by_screens(client, engine, council_admin, group_admin)
    forms = _forms(client, council.email)
    for bad in ({"reason": "bogus"}, {"mode": "existing"}, {"partner_org_id": "x"}):
        data = {
            "source_kind": "callback",
            "source_id": str(ids["task"]),
            "partner_org_id": str(group.org_id),
            "reason": "language_support",
            "mode": "consent",
            "method": "verbal_phone",
            **bad,
        }
        r = forms.post("/referrals/new", data)
        assert r.status_code == 303, r.text
        page = client.get(r.headers["location"])
        assert page.status_code == 200
        assert re.search(r"保存できませんでした：", page.text), bad
    with Session(engine) as s:
        assert s.exec(select(Referral)).all() == []
    assert client.get("/referrals/new?source_kind=case&source_id=nope").status_code == 404
