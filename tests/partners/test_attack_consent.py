"""Consent, attacked: the resident takes back consent to share with a partner, but staff had
recorded it twice (the dashboard records a consent with every consented referral). Withdrawing
the consent they are shown must end the resident's consent to that partner, not leave an
older one in force under which new named referrals are still sent."""

from __future__ import annotations

from tests.partners.test_referrals_api import _partner_up, _refer, build_world


def _consent(client, council, group, ids, **extra) -> dict:
    r = client.post(
        f"/api/v1/residents/{ids['resident']}/referral-consents",
        json={"partner_org_id": str(group.org_id), "method": "verbal_phone", **extra},
        headers=council.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_withdrawing_consent_withdraws_every_consent_to_that_partner(client, engine):
    council_admin, council, group_admin, group, ids = build_world(client, engine)
    _partner_up(client, council_admin, group_admin)
    _consent(client, council, group, ids, share_notes=True)
    first = _refer(client, council, group, ids)
    latest = _consent(client, council, group, ids)
    second = _refer(client, council, group, ids)

    r = client.post(f"/api/v1/referral-consents/{latest['id']}/withdraw", headers=council.headers)
    assert r.status_code == 200, r.text

    # No consent of the resident to this partner is left in force...
    consents = client.get(
        f"/api/v1/residents/{ids['resident']}/referral-consents", headers=council.headers
    ).json()
    assert consents["count"] == 2
    assert all(row["withdrawn_at"] for row in consents["data"])
    # ...so the partner reads neither referral (the one under the older consent included)...
    for sent in (first, second):
        got = client.get(f"/api/v1/referrals-received/{sent['id']}", headers=group.headers)
        assert got.status_code == 404, got.text
    # ...and a named referral (with the notes the older consent allowed) is refused.
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
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "anonymous"]


def test_a_repeated_withdrawal_of_an_old_consent_leaves_a_newer_one_alone(client, engine):
    """The resident took consent back, then gave it again: a retried withdrawal of the old
    consent must not take back the new one."""
    council_admin, council, group_admin, group, ids = build_world(client, engine)
    _partner_up(client, council_admin, group_admin)
    old = _consent(client, council, group, ids)
    url = f"/api/v1/referral-consents/{old['id']}/withdraw"
    assert client.post(url, headers=council.headers).status_code == 200
    _consent(client, council, group, ids)
    assert client.post(url, headers=council.headers).status_code == 200
    _refer(client, council, group, ids)  # the new consent still carries a named referral


def test_a_referral_sent_as_consent_is_withdrawn_is_refused(client, engine, monkeypatch):
    """Staff send a named referral while a colleague records that the resident took consent
    back: the referral, decided on a consent no longer in force, is refused (not left open,
    with the resident's details, under a withdrawn consent)."""
    from service.referrals import service as referrals

    council_admin, council, group_admin, group, ids = build_world(client, engine)
    _partner_up(client, council_admin, group_admin)
    consent = _consent(client, council, group, ids)
    found = referrals.active_consent

    def found_then_withdrawn(session, resident_id, partner_org_id):
        row = found(session, resident_id, partner_org_id)
        url = f"/api/v1/referral-consents/{consent['id']}/withdraw"
        assert client.post(url, headers=council.headers).status_code == 200
        return row

    monkeypatch.setattr(referrals, "active_consent", found_then_withdrawn)
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
    monkeypatch.undo()
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "anonymous"]
    inbox = client.get("/api/v1/referrals-received", headers=group.headers).json()
    assert inbox["count"] == 0
