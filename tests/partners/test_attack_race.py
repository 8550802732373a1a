"""A referral moved by both sides at once: the council closes it while the partner, who
read it a moment before, accepts it. The partner's step must not reopen a closed referral
(which would give the partner back access the council just ended); it is refused, named."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from service.referrals import service as referrals
from service.referrals.models import Referral
from tests.partners.test_referrals_api import _partner_up, _refer, build_world


def test_a_partner_step_on_a_referral_closed_meanwhile_is_refused(client, engine, monkeypatch):
    council_admin, council, group_admin, group, ids = build_world(client, engine)
    _partner_up(client, council_admin, group_admin)
    sent = _refer(client, council, group, ids, anonymous=True)
    readable = referrals._readable_by_partner

    def read_then_council_closes(session, org_id, referral_id):
        referral = readable(session, org_id, referral_id)  # the partner has read "sent"
        r = client.post(f"/api/v1/referrals/{sent['id']}/close", headers=council.headers)
        assert r.status_code == 200 and r.json()["status"] == "closed"
        return referral

    monkeypatch.setattr(referrals, "_readable_by_partner", read_then_council_closes)
    r = client.post(
        f"/api/v1/referrals-received/{sent['id']}/accept",
        json={"contact_name": "Trần Văn Minh"},
        headers=group.headers,
    )
    monkeypatch.undo()
    assert r.status_code == 422, r.text
    assert "closed" in r.json()["detail"][0]["msg"]
    with Session(engine) as s:
        row = s.get(Referral, uuid.UUID(sent["id"]))
        assert row is not None and row.status == "closed" and row.contact_name is None
    got = client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers)
    assert got.status_code == 404
