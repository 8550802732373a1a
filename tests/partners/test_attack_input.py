"""Hostile input to issue 21's routes: a lone surrogate in a JSON string ("\\ud800") is valid
JSON but not text. It used to fail as a 500 (UTF-8 cannot encode it for the database, nor
for the 422 that echoed it); it is a 422 naming the field, and nothing is stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from service.announcements.models import Announcement
from service.partners.models import Partnership
from service.referrals.models import Referral
from tests.partners.test_referrals_api import _partner_up, build_world


def _post(client, url: str, body: dict, escape: str, headers: dict[str, str]):
    """POST ``body`` as JSON with "@@" replaced by ``escape`` as written (a raw escape)."""
    raw = json.dumps(body, ensure_ascii=False).replace("@@", escape).encode("utf-8")
    return client.post(url, content=raw, headers={**headers, "content-type": "application/json"})


def _count(engine, table) -> int:
    with Session(engine) as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\uDC80x", "a\\ud83d"])
def test_a_lone_surrogate_is_a_named_422_not_a_500(client, engine, escape):
    council_admin, council, group_admin, group, ids = build_world(client, engine)
    _partner_up(client, council_admin, group_admin)
    partnerships = _count(engine, Partnership)
    cases = [
        (
            "/api/v1/referrals",
            {
                "partner_org_id": str(group.org_id),
                "source_kind": "callback",
                "source_id": str(ids["task"]),
                "reason": "language_support",
                "anonymous": True,
                "area": "@@",
            },
            council.headers,
            ["body", "area"],
        ),
        (
            "/api/v1/partnerships",
            {"organization_name": "@@"},
            council_admin.headers,
            ["body", "organization_name"],
        ),
        (
            "/api/v1/announcements",
            {"text": "給水@@", "site_ids": []},
            council.headers,
            ["body", "text"],
        ),
        (
            "/api/v1/announcements",
            {"text": "給水", "site_ids": ["@@"]},
            council.headers,
            ["body", "site_ids", 0],
        ),
    ]
    for url, body, headers, loc in cases:
        response = _post(client, url, body, escape, headers)
        assert response.status_code == 422, (url, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == loc
        assert "surrogate" in detail["msg"]
    assert _count(engine, Referral) == 0
    assert _count(engine, Announcement) == 0
    assert _count(engine, Partnership) == partnerships


def test_a_proper_surrogate_pair_is_text_and_accepted(client, engine):
    """An emoji written as an escaped pair ("\\ud83d\\udca7" is 💧) is ordinary text."""
    council = build_world(client, engine)[1]
    response = _post(
        client, "/api/v1/announcements", {"text": "@@ 給水"}, "\\ud83d\\udca7", council.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["source_text"] == "💧 給水"
