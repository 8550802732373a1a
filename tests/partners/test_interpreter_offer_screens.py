"""The dashboard's shared-interpreter screen (issue 21, item 3): an admin offers a member
for languages and withdraws the offer; the partner sees the offer (name, organization,
languages) and nothing once it is withdrawn; a refused offer saves nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.partners.interpreters import InterpreterOffer
from tests.conftest import Staff
from tests.partners.test_interpreter_offers import _member, _partners
from tests.web.conftest import FormClient

PAGE = "/partners/interpreters"


def _forms(client: TestClient, email: str) -> FormClient:
    forms = FormClient(client)
    assert forms.login(email).status_code == 303
    return forms


def test_an_admin_offers_and_withdraws_on_the_screen_and_the_partner_sees_it(
    client: TestClient, engine: Engine, admin: Staff, other_org_admin: Staff
):
    from service.app import create_app

    _partners(engine, admin.org_id, other_org_admin.org_id)
    member_id = _member(engine, other_org_admin.org_id)
    group = _forms(client, other_org_admin.email)
    page = client.get(PAGE)
    assert page.status_code == 200 and "Nguyen Thi Lan" in page.text
    r = group.post(f"{PAGE}/offer", {"member_id": member_id, "languages": "vi"})
    assert r.status_code == 303
    with Session(engine) as s:
        offer = s.exec(select(InterpreterOffer)).one()
    with TestClient(create_app()) as other:
        _forms(other, admin.email)
        seen = other.get(PAGE)
        assert seen.status_code == 200
        assert "Nguyen Thi Lan" in seen.text and "天草市社会福祉協議会" in seen.text
        assert "080-4" not in seen.text  # never the phone
        # The council cannot withdraw the partner's offer: not theirs (404), nothing saved.
        council = FormClient(other)
        assert council.post(f"{PAGE}/{offer.id}/withdraw").status_code == 404
        assert group.post(f"{PAGE}/{offer.id}/withdraw").status_code == 303
        assert "Nguyen Thi Lan" not in other.get(PAGE).text
    with Session(engine) as s:
        assert s.get(InterpreterOffer, offer.id).active is False


def test_a_refused_offer_is_a_translated_message_and_saves_nothing(
    client: TestClient, engine: Engine, admin: Staff
):
    member_id = _member(engine, admin.org_id)
    forms = _forms(client, admin.email)
    r = forms.post(f"{PAGE}/offer", {"member_id": member_id, "languages": "ne"})
    assert r.status_code == 303
    page = client.get(PAGE)
    assert "保存できませんでした" in page.text and "を話しません" in page.text
    with Session(engine) as s:
        assert s.exec(select(InterpreterOffer)).all() == []
