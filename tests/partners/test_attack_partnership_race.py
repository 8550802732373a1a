"""A partnership answered and ended at once: the inviter withdraws its invitation while the
invited admin, who read it a moment before, accepts it. The acceptance must not make the two
partners after all (a half-state: "active" with no open pair, which some checks count as a
partnership and others do not); it is refused, named, and nothing is shared."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from service.partners import service as partners
from service.partners.models import Partnership
from tests.partners.test_referrals_api import GROUP, build_world


def test_accepting_an_invitation_withdrawn_meanwhile_is_refused(client, engine, monkeypatch):
    council_admin, _council, group_admin, group, _ids = build_world(client, engine)
    r = client.post(
        "/api/v1/partnerships", json={"organization_name": GROUP}, headers=council_admin.headers
    )
    assert r.status_code == 201, r.text
    partnership_id = r.json()["id"]
    read = partners.get_partnership
    raced: list[bool] = []

    def read_then_inviter_withdraws(session, org_id, pid):
        row = read(session, org_id, pid)  # the invited admin has read "invited"
        if raced:  # the inviter's own request reads it too
            return row
        raced.append(True)
        ended = client.post(
            f"/api/v1/partnerships/{partnership_id}/end", headers=council_admin.headers
        )
        assert ended.status_code == 200 and ended.json()["status"] == "ended"
        return row

    monkeypatch.setattr(partners, "get_partnership", read_then_inviter_withdraws)
    r = client.post(f"/api/v1/partnerships/{partnership_id}/accept", headers=group_admin.headers)
    monkeypatch.undo()
    assert r.status_code == 409, r.text
    assert "ended" in r.json()["detail"][0]["msg"]
    with Session(engine) as s:
        row = s.get(Partnership, uuid.UUID(partnership_id))
        assert row is not None and row.status == "ended" and row.accepted_by is None
        assert partners.partner_org_ids(s, group.org_id) == set()
