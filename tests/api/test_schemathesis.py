"""schemathesis over /openapi.json, as an admin and as a viewer (issue 18).

Every API operation is called with generated requests, valid and invalid, on a migrated
database with an organization, its staff, sites, residents and members. A response must not
be a server error, must be one of the status codes the operation declares, and must match
the declared schema. Twilio's webhooks are left out (they answer TwiML to signed requests and
have their own tests), and so are the login and logout routes (login throttling would count
the generated guesses; a logout would end the caller's token halfway through the run). The seed is fixed and the examples bounded, so CI's time stays in check.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import Session

from service.app import create_app
from service.auth.models import Role
from service.config import get_settings
from service.ops.models import Heartbeat
from tests.conftest import Staff, make_staff

MAX_EXAMPLES = 6

# The app reads its database from the settings at each request, so one instance serves every
# test's fresh database; schemathesis calls it in-process (its ASGI transport).
APP = create_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(
    path_regex=r"^/twilio/|^/api/v1/auth/"
)

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _seed(client: TestClient, staff: Staff) -> None:
    """Records for the generated requests to meet: two sites, residents, members, a link."""
    sites = []
    for name, area in (("輪島市 宅田町第2団地", "390"), ("珠洲市 正院町団地", "390")):
        r = client.post(
            "/api/v1/sites",
            headers=staff.headers,
            json={"name": name, "jma_area_code": area, "municipality_code": "172049"},
        )
        assert r.status_code == 201, r.text
        sites.append(r.json()["id"])
    residents = []
    for i, (name, language) in enumerate((("能登 花子", "ja"), ("Maria Santos", "fil"))):
        r = client.post(
            "/api/v1/residents",
            headers=staff.headers,
            json={
                "external_id": f"R{i}",
                "name": name,
                "phone": f"090-1234-56{i:02d}",
                "language": language,
                "site_id": sites[i],
            },
        )
        assert r.status_code == 201, r.text
        residents.append(r.json()["id"])
    r = client.post(
        "/api/v1/members",
        headers=staff.headers,
        json={"name": "見守り 太郎", "phone": "090-8765-4321", "languages": ["ja", "en"]},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/assignments",
        headers=staff.headers,
        json={"resident_id": residents[0], "member_id": r.json()["id"]},
    )
    assert r.status_code == 201, r.text


@pytest.fixture(params=[Role.admin, Role.viewer], ids=["admin", "viewer"])
def caller(request: pytest.FixtureRequest, client: TestClient, engine, monkeypatch) -> Staff:  # type: ignore[no-untyped-def]
    # The JMA push is on (a staff token is then a wrong push token: 401), and a scheduler
    # has just beaten, so /readyz can answer 200 and its 503 means something.
    monkeypatch.setenv("MIMAMORI_JMA_PUSH_TOKEN", "push-" + uuid.uuid4().hex)
    get_settings.cache_clear()
    with Session(engine) as session:
        session.add(Heartbeat(name="scheduler", holder="schemathesis"))
        session.commit()
    admin = make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.admin)
    _seed(client, admin)
    if request.param is Role.admin:
        return admin
    return make_staff(client, engine, org="輪島市社会福祉協議会", role=Role.viewer)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, caller: Staff) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers=caller.headers, checks=CHECKS)
