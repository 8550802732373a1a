"""The registry screens over HTTP: validation errors named in Japanese with nothing
written, roles, organization scoping, audit rows and the consent date. The browser tests of
the same screens are in test_registry_browser.py; the people screens are in test_people.py.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.models import Role
from service.registry.models import Assignment, Member, Resident, Site
from tests.checkins.conftest import World
from tests.conftest import make_staff
from tests.web.conftest import FormClient, add_staff

SITE = "鳳至町仮設団地"
NEW_PASSWORD = "kiriko lantern seaside morning"


def _setup(world: World) -> None:
    world.site(SITE)
    world.member("M1", "080-3000-0001")
    world.member("M2", "080-3000-0002")
    world.resident("R1", "090-2000-0001", site=SITE, name="輪島 花子", name_kana="わじま はなこ")
    world.assign("R1", "M1", 1)


def _count(engine, model) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def _audit(engine, action: str, entity_type: str) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(AuditEntry)
                .where(AuditEntry.action == action, AuditEntry.entity_type == entity_type)
                .order_by(AuditEntry.at)
            ).all()
        )


RESIDENT_FORM = {
    "name": "珠洲 一郎",
    "name_kana": "すず いちろう",
    "phone": "090-1111-2222",
    "language": "ja",
    "preferred_channel": "sms",
    "consent_date": "2026-11-01",
}


# --- Validation: named, in Japanese, nothing written ------------------------------------------


def test_a_bad_phone_is_named_in_japanese_and_nothing_is_written(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    before = _count(engine, Resident)
    audits = _count(engine, AuditEntry)
    response = forms.post("/registry/residents", {**RESIDENT_FORM, "phone": "090-1111"})
    assert response.status_code == 422
    assert 'data-field="phone"' in response.text
    assert "電話番号として読めません" in response.text
    assert 'value="090-1111"' in response.text  # what was typed is kept
    assert _count(engine, Resident) == before
    assert _count(engine, AuditEntry) == audits


def test_a_blank_name_and_a_bad_date_are_each_named(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    bad_date = forms.post("/registry/residents", {**RESIDENT_FORM, "consent_date": "昨日"})
    assert bad_date.status_code == 422 and "2026-11-01 のような日付" in bad_date.text
    blank = forms.post("/registry/residents", {**RESIDENT_FORM, "name": "  "})
    assert blank.status_code == 422
    assert 'data-field="name"' in blank.text and "入力が必要です" in blank.text
    assert _count(engine, Resident) == 1


def test_a_duplicate_id_is_a_named_conflict(forms: FormClient, world: World, engine) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post("/registry/residents", {**RESIDENT_FORM, "external_id": "R1"})
    assert response.status_code == 422
    assert "このIDはすでに別の登録で使われています" in response.text
    assert _count(engine, Resident) == 1


def test_an_edit_with_a_bad_second_phone_changes_nothing(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    rid = world.residents["R1"]
    form = forms.client.get(f"/residents/{rid}/edit").text
    assert 'value="090-2000-0001"' in form
    response = forms.post(
        f"/residents/{rid}/edit",
        {**RESIDENT_FORM, "phone": "090-9999-8888", "phone2": "12", "status": "active"},
    )
    assert response.status_code == 422 and 'data-field="phone2"' in response.text
    with Session(engine) as s:
        assert s.get(Resident, rid).phone == "+819020000001"  # the first phone did not change
    assert not [e for e in _audit(engine, "update", "resident") if e.entity_id == str(rid)]


# --- Create and edit, audited; the consent date is a local date -------------------------------


def test_a_new_resident_is_saved_audited_and_shows_the_consent_day_itself(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post(
        "/registry/residents",
        {**RESIDENT_FORM, "site_id": str(world.sites[SITE]), "needs_interpreter": "1"},
    )
    assert response.status_code == 303, response.text
    with Session(engine) as s:
        resident = s.exec(select(Resident).where(Resident.name == "珠洲 一郎")).one()
        assert resident.phone == "+819011112222" and resident.needs_interpreter
        # Midnight in Tokyo, which is the day before in UTC.
        assert resident.consent_at.isoformat().startswith("2026-10-31T15:00")
    created = _audit(engine, "create", "resident")
    assert created and created[-1].actor.startswith("職員 coordinator")
    page = forms.client.get(response.headers["location"]).text
    consent = re.search(r'data-field="consent">([^<]*)<', page).group(1)
    assert consent.startswith("2026/11/01"), consent


def test_the_resident_list_filters_by_flag_status_and_language_in_kana_order(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    world.resident("R2", "090-2000-0002", name="穴水 次郎", name_kana="あなみず じろう")
    world.resident("R3", "090-2000-0003", language="vi", name="Nguyen", lives_alone=True)
    forms.login(add_staff(engine, Role.viewer))
    everyone = forms.client.get("/registry/residents").text
    assert everyone.index("穴水 次郎") < everyone.index("輪島 花子")  # あ before わ
    alone = forms.client.get("/registry/residents", params={"flag": "lives_alone"}).text
    assert "Nguyen" in alone and "輪島 花子" not in alone
    vietnamese = forms.client.get("/registry/residents", params={"language": "vi"}).text
    assert "Nguyen" in vietnamese and "穴水 次郎" not in vietnamese
    moved = forms.client.get("/registry/residents", params={"status": "moved_out"}).text
    assert "Nguyen" not in moved and "輪島 花子" not in moved
    lists = _audit(engine, "list", "resident")
    assert lists and "flag" in lists[1].detail["filters"]


def test_contacts_are_added_reordered_and_removed_with_an_audit_each(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    rid = world.residents["R1"]
    m1, m2 = world.members["M1"], world.members["M2"]
    assert forms.post(f"/residents/{rid}/assignments", {"member_id": str(m2)}).status_code == 303
    again = forms.post(f"/residents/{rid}/assignments", {"member_id": str(m2)})
    assert again.status_code == 303
    assert "この担当者はすでにこの住民の担当です" in forms.client.get(f"/residents/{rid}").text

    def order() -> list[uuid.UUID]:
        with Session(engine) as s:
            rows = s.exec(
                select(Assignment).where(Assignment.resident_id == rid).order_by(Assignment.rank)
            ).all()
            return [a.member_id for a in rows]

    assert order() == [m1, m2]
    with Session(engine) as s:
        second = s.exec(select(Assignment).where(Assignment.member_id == m2)).one()
    forms.post(f"/assignments/{second.id}/move", {"direction": "up"})
    assert order() == [m2, m1]
    rank_changes = [e for e in _audit(engine, "update", "assignment") if e.fields == ["rank"]]
    assert len(rank_changes) == 2
    forms.post(f"/assignments/{second.id}/delete")
    assert order() == [m1]
    with Session(engine) as s:
        assert s.exec(select(Assignment.rank).where(Assignment.resident_id == rid)).one() == 1
    assert _audit(engine, "delete", "assignment")


def test_members_and_sites_are_created_edited_and_deactivated(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    bad = forms.post("/registry/members", {"name": "門前 三郎", "phone": "", "languages": "ja"})
    assert bad.status_code == 422 and "電話番号" in bad.text
    made = forms.post(
        "/registry/members",
        {"name": "門前 三郎", "phone": "080-4000-0003", "languages": ["ja", "vi"], "active": "1"},
    )
    assert made.status_code == 303
    with Session(engine) as s:
        member = s.exec(select(Member).where(Member.name == "門前 三郎")).one()
        assert member.languages == ["ja", "vi"] and member.active
    forms.post(f"/registry/members/{member.id}/active", {"active": "0"})
    with Session(engine) as s:
        assert s.get(Member, member.id).active is False
    site = forms.post("/registry/sites", {"name": "門前町団地", "jma_area_code": "39"})
    assert site.status_code == 422 and "3桁" in site.text
    assert (
        forms.post("/registry/sites", {"name": "門前町団地", "jma_area_code": "390"}).status_code
        == 303
    )
    dup = forms.post("/registry/sites", {"name": "門前町団地"})
    assert dup.status_code == 422 and "同じ名前の団地" in dup.text
    assert _count(engine, Site) == 2


# --- Roles and scoping ------------------------------------------------------------------------


def test_a_viewer_reads_the_registry_but_cannot_change_it(
    forms: FormClient, world: World, engine
) -> None:
    _setup(world)
    forms.login(add_staff(engine, Role.viewer))
    rid = world.residents["R1"]
    assert forms.client.get("/registry/residents").status_code == 200
    assert "/registry/residents/new" not in forms.client.get("/registry/residents").text
    page = forms.client.get(f"/residents/{rid}").text
    assert "/assignments" not in page and "/edit" not in page
    refused = [
        forms.post("/registry/residents", RESIDENT_FORM),
        forms.post(f"/residents/{rid}/edit", RESIDENT_FORM),
        forms.post(f"/residents/{rid}/assignments", {"member_id": str(world.members["M2"])}),
        forms.post("/registry/members", {"name": "x", "phone": "080-4000-0009"}),
        forms.post("/registry/sites", {"name": "x"}),
        forms.post(f"/residents/{rid}/deactivate", {"status": "opted_out"}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert _count(engine, Resident) == 1 and _count(engine, Assignment) == 1


def test_another_organizations_records_are_not_found_on_any_screen(
    forms: FormClient, world: World, engine, client
) -> None:
    _setup(world)
    other = make_staff(client, engine, org="天草市社会福祉協議会", role=Role.admin)
    forms.login(other.email)
    rid = world.residents["R1"]
    with Session(engine) as s:
        assignment = s.exec(select(Assignment)).one()
    assert forms.client.get(f"/residents/{rid}/edit").status_code == 404
    assert forms.client.get(f"/registry/members/{world.members['M1']}").status_code == 404
    assert forms.client.get(f"/registry/sites/{world.sites[SITE]}").status_code == 404
    assert forms.post(f"/residents/{rid}/edit", RESIDENT_FORM).status_code == 404
    assert forms.post(f"/assignments/{assignment.id}/delete").status_code == 404
    assert "輪島 花子" not in forms.client.get("/registry/residents").text
    with Session(engine) as s:
        assert s.get(Resident, rid).name == "輪島 花子"
    assert _count(engine, Assignment) == 1
