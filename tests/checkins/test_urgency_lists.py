"""The API lists check-ins and cases most urgent first, filtered, and only the caller's."""

from __future__ import annotations

import uuid

from sqlmodel import select

from service.escalations.models import Escalation

PLAN = [
    {"channel": "sms", "message": "prompt", "wait_minutes": 60},
    {"channel": "sms", "message": "reminder", "wait_minutes": 60},
]


def _morning(world):
    """Eight residents, each answering (or not) differently."""
    world.site("A団地")
    world.site("B団地")
    world.member("M1", "080-3000-0001")
    people = {
        "R1": ("090-1000-0001", "2"),  # help
        "R2": ("090-1000-0002", None),  # silent until the end of the plan
        "R3": ("090-1000-0003", "1"),  # fine
        "R4": ("090-1000-0004", "明日は雨かな"),  # unclear: flagged, still waiting
        "R5": ("090-1000-0005", None),  # silent, reminded
        "R6": ("090-1000-0006", "3"),  # wants to talk
    }
    for n, (key, (phone, _)) in enumerate(people.items()):
        world.resident(key, phone, site="A団地" if n % 2 == 0 else "B団地")
        world.assign(key, "M1", 1)
    world.resident("R7", None, site="A団地")  # no phone: the visit list
    world.assign("R7", "M1", 1)
    world.broadcast(plan=PLAN)
    world.tick()
    for phone, reply in people.values():
        if reply is not None:
            world.sms("+81" + phone.replace("-", "")[1:], reply)
    # R2's plan runs out first: everyone else's reminder goes at 60 minutes, R2's is moved
    # earlier so that its plan ends while R5 is still waiting.
    with world.session() as s:
        from service.checkins.models import CheckIn

        r2 = s.exec(select(CheckIn).where(CheckIn.resident_id == world.residents["R2"])).one()
        r2.step_index = 1
        s.add(r2)
        s.commit()
    world.tick(60)


def _names(page) -> list[str]:
    return [row["resident_name"].split()[-1] for row in page["data"]]


def test_checkins_are_listed_most_urgent_first(world, coordinator):
    _morning(world)
    response = world.client.get("/api/v1/checkins", headers=coordinator.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    states = [(row["resident_name"].split()[-1], row["state"]) for row in page["data"]]
    assert states == [
        ("R1", "needs_help"),
        ("R2", "no_reply"),
        ("R7", "visit_list"),
        ("R4", "waiting"),  # a reply nobody could read comes before plain silence
        ("R5", "waiting"),
        ("R6", "wants_talk"),
        ("R3", "ok"),
    ]
    assert page["count"] == 7
    by_name = world.client.get("/api/v1/checkins?sort=name", headers=coordinator.headers).json()
    assert _names(by_name) == ["R1", "R2", "R3", "R4", "R5", "R6", "R7"]


def test_checkins_are_filtered_by_state_flag_site_and_round(world, coordinator):
    _morning(world)

    def names(query: str) -> list[str]:
        response = world.client.get(f"/api/v1/checkins?{query}", headers=coordinator.headers)
        assert response.status_code == 200, response.text
        return _names(response.json())

    assert names("state=waiting") == ["R4", "R5"]
    assert names("flagged=true") == ["R4"]
    assert names(f"site_id={world.sites['B団地']}") == ["R2", "R4", "R6"]
    round_id = world.client.get("/api/v1/rounds", headers=coordinator.headers).json()["data"][0][
        "id"
    ]
    assert names(f"round_id={round_id}&state=needs_help") == ["R1"]
    listing = world.client.get(
        f"/api/v1/rounds/{round_id}/checkins?sort=urgency", headers=coordinator.headers
    ).json()
    assert _names(listing)[:2] == ["R1", "R2"]
    bad = world.client.get("/api/v1/checkins?state=lost", headers=coordinator.headers)
    assert bad.status_code == 422 and "state" in bad.text


def test_another_organizations_check_ins_and_cases_are_not_listed(world, other_org_admin):
    _morning(world)
    for path in ("/api/v1/checkins", "/api/v1/escalations"):
        page = world.client.get(path, headers=other_org_admin.headers).json()
        assert page == {"data": [], "count": 0}


def test_cases_are_listed_in_the_boards_order(world, coordinator):
    """Calls for help first (whoever holds them), then chains nobody took, then cases
    waiting for a member; cases a member has taken last. The dashboard's board order."""
    _morning(world)
    with world.session() as s:
        cases = {e.resident_id: e for e in s.exec(select(Escalation)).all()}
    by_resident = {v: k for k, v in world.residents.items()}

    def order() -> list[str]:
        page = world.client.get("/api/v1/escalations", headers=coordinator.headers).json()
        return [by_resident[uuid.UUID(row["resident_id"])] for row in page["data"]]

    assert [cases[world.residents[k]].state for k in ("R1", "R7", "R2")] == [
        "exhausted",
        "exhausted",
        "alerting",
    ]
    assert order() == ["R1", "R7", "R2"]
    # M1 takes R7's case, and R1's: R7 goes to the end, R1 (help) stays first.
    world.sms("+818030000001", f"1 {cases[world.residents['R7']].case_code}")
    world.sms("+818030000001", f"1 {cases[world.residents['R1']].case_code}")
    assert order() == ["R1", "R2", "R7"]


def test_a_residents_timeline_is_every_contact_in_order(world, coordinator, other_org_admin):
    """R2's day: the check-in SMS, then the case opened, then its alert, and a staff note
    after them. Another organization cannot read it."""
    _morning(world)
    r2 = world.residents["R2"]
    world.clock.advance(minutes=1)
    note = world.client.post(
        f"/api/v1/residents/{r2}/notes", json={"text": "電話で確認中"}, headers=coordinator.headers
    )
    assert note.status_code == 201, note.text
    response = world.client.get(f"/api/v1/residents/{r2}/timeline", headers=coordinator.headers)
    assert response.status_code == 200, response.text
    items = response.json()
    times = [item["at"] for item in items]
    assert times == sorted(times)
    kinds = [item["kind"] for item in items]
    for expected in ("sms.out.checkin", "escalation.opened", "escalation.alert", "note"):
        assert expected in kinds, (expected, kinds)
    assert kinds.index("sms.out.checkin") < kinds.index("escalation.opened")
    assert kinds.index("escalation.opened") < kinds.index("escalation.alert")
    assert kinds[-1] == "note"
    other = world.client.get(f"/api/v1/residents/{r2}/timeline", headers=other_org_admin.headers)
    assert other.status_code == 404


def test_listing_check_ins_is_audited(world, coordinator):
    from service.audit.models import AuditEntry

    _morning(world)
    world.client.get("/api/v1/checkins?state=waiting", headers=coordinator.headers)
    with world.session() as s:
        [entry] = s.exec(
            select(AuditEntry).where(
                AuditEntry.action == "list", AuditEntry.entity_type == "checkin"
            )
        ).all()
    assert entry.actor_user_id == coordinator.user_id
    assert entry.detail == {"returned": 2, "filters": ["state"]}
