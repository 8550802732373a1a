"""Names per language: an organization and a site keep a name per language, set through the
API and the CLI (validated, audited), and every SMS and call uses the recipient's one.

The messages are the real ones: a round fanned out and dispatched through the outbox to the
console provider, replies through the signed webhook, calls through the TwiML webhook.
"""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from i18n.names import has_japanese_script
from i18n.render import render
from i18n.segments import sms_segments
from service.audit.models import AuditEntry
from service.audit.service import Actor
from service.registry import service as registry
from service.registry.models import MemberKind, Organization, OrganizationUpdate, Site, SiteUpdate
from tests.checkins.conftest import World, world  # noqa: F401
from tests.conftest import Staff
from tests.telephony.worlds import (
    ACCOUNT,
    LANDLINE,
    LANDLINE_LOCAL,
    OUR_NUMBER,
    outbox_to,
    signed_headers,
    start_round_for,
)

ORG = "輪島市社会福祉協議会"
READING = "わじまし しゃかいふくし きょうぎかい"
EN = "Wajima City Social Welfare Council"
VI = "Hội đồng Phúc lợi Xã hội thành phố Wajima"
SITE = "宅田町第2団地"
SITE_EN = "Takuda-machi Housing No. 2"
MIMAMORI = str(Path(sys.executable).parent / "mimamori")

# Residents as a Wajima round really has them: realistic names, several languages.
RESIDENTS = {
    "en": ("R-en", "090-1000-0001", "Emily Johnson"),
    "fil": ("R-fil", "090-1000-0002", "Maria Santos"),
    "id": ("R-id", "090-1000-0003", "Siti Rahayu"),
    "easy_ja": ("R-easy", "090-1000-0004", "グエン・ティ・ラン"),
    "vi": ("R-vi", "090-1000-0005", "Nguyễn Văn An"),
    "ja": ("R-ja", "090-1000-0006", "能登 花子"),
    "zh_Hans": ("R-zh", "090-1000-0007", "王芳"),
}


def _e164(phone: str) -> str:
    return "+81" + phone.replace("-", "")[1:]


def _set_names(world: World, names: dict[str, str | None], site: str | None = None) -> None:
    with Session(world.engine) as s:
        if site:
            registry.update_site(
                session=s,
                organization_id=world.org_id,
                site_id=world.sites[site],
                data=SiteUpdate(names=names),
                actor=Actor(label="test"),
            )
        else:
            registry.update_organization(
                session=s,
                organization_id=world.org_id,
                data=OrganizationUpdate(names=names),
                actor=Actor(label="test"),
            )
        s.commit()


def _round_of_checkins(world: World) -> dict[str, str]:
    """A round to every resident in RESIDENTS, sent through the outbox; the body each got."""
    for language, (key, phone, name) in RESIDENTS.items():
        world.resident(key, phone, language=language, name=name)
    start_round_for(world, *(key for key, _phone, _name in RESIDENTS.values()))
    world.tick()  # the dispatcher sends every row through the console provider
    sent = {record.to: record.body for record in world.provider.sent if record.body}
    bodies: dict[str, str] = {}
    for language, (_key, phone, _name) in RESIDENTS.items():
        [row] = outbox_to(world.engine, _e164(phone), "sms")
        assert row.status == "sent" and row.body is not None
        assert sent[_e164(phone)] == row.body  # what left is what the outbox holds
        bodies[language] = row.body
    return bodies


# --- What residents receive --------------------------------------------------------------------


def test_english_filipino_and_indonesian_checkins_are_gsm7_and_one_segment(world: World):
    _set_names(world, {"en": EN, "easy_ja": READING, "vi": VI})
    bodies = _round_of_checkins(world)
    for language in ("en", "fil", "id"):
        info = sms_segments(bodies[language])
        assert (info.encoding, info.segments) == ("GSM-7", 1), (language, bodies[language])
        assert EN in bodies[language] and ORG not in bodies[language]
        name = RESIDENTS[language][2]
        assert bodies[language] == render("resident.checkin", language, org=EN, name=name)
    assert READING in bodies["easy_ja"] and ORG not in bodies["easy_ja"]
    assert VI in bodies["vi"]
    # Japanese and Chinese readers keep the Japanese name.
    assert ORG in bodies["ja"] and ORG in bodies["zh_Hans"]


def test_without_names_every_checkin_keeps_the_japanese_name(world: World):
    bodies = _round_of_checkins(world)
    for language, body in bodies.items():
        assert ORG in body, language
    # Which is exactly what turns the English check-in into UCS-2.
    assert sms_segments(bodies["en"]).encoding == "UCS-2"


def test_a_residents_reply_is_answered_with_their_name_for_the_council(world: World):
    _set_names(world, {"en": EN})
    key, phone, name = RESIDENTS["id"]
    world.resident(key, phone, language="id", name=name)
    start_round_for(world, key)
    world.tick()
    answer = ET.fromstring(world.sms(_e164(phone), "1")).findtext("Message") or ""
    assert answer == render("resident.reply.ok", "id", org=EN)
    assert sms_segments(answer).encoding == "GSM-7"


def test_a_member_reads_the_council_and_the_site_in_their_language(world: World):
    world.site(SITE)
    _set_names(world, {"en": EN})
    _set_names(world, {"en": SITE_EN}, site=SITE)
    world.member("M1", "080-3000-0001", languages=["en"], kind=MemberKind.interpreter)
    world.member("M2", "080-3000-0002", languages=["ja"])
    world.silent_case("M1", "M2", site=SITE)
    [english] = [m for m in world.sent_to("+818030000001") if m.purpose == "alert"]
    assert EN in (english.body or "") and SITE_EN in (english.body or "")
    assert not has_japanese_script((english.body or "").replace("住民 R1", ""))
    # A Japanese member still reads the Japanese names when the case reaches them.
    world.sms("+818030000001", "2")
    [japanese] = [m for m in world.sent_to("+818030000002") if m.purpose == "alert"]
    assert ORG in (japanese.body or "") and SITE in (japanese.body or "")


def test_a_members_answers_name_the_site_in_their_language(world: World):
    world.site(SITE)
    _set_names(world, {"en": SITE_EN}, site=SITE)
    world.member("M1", "080-3000-0001", languages=["en"], kind=MemberKind.interpreter)
    world.silent_case("M1", site=SITE)
    answer = ET.fromstring(world.sms("+818030000001", "1")).findtext("Message") or ""
    assert SITE_EN in answer and SITE not in answer


# --- What a call says ----------------------------------------------------------------------


def _call_says(world: World, language: str) -> ET.Element:
    world.resident("R-call", LANDLINE_LOCAL, language=language)
    start_round_for(world, "R-call", plan=[{"channel": "voice", "wait_minutes": 30}])
    world.tick()
    [call] = outbox_to(world.engine, LANDLINE)
    assert call.channel == "call" and call.sid
    params = {
        "CallSid": call.sid,
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": LANDLINE,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "AnsweredBy": "human",
    }
    path = f"/twilio/voice?attempt={call.id}"
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return root


def _greeting(root: ET.Element) -> ET.Element:
    say = root.find("Say")
    assert say is not None, ET.tostring(root, encoding="unicode")
    return say


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"vi": VI, "en": EN, "easy_ja": READING}, VI),
        ({"en": EN}, EN),
        ({"easy_ja": READING}, "Wajimashi Shakaifukushi Kyougikai"),
        ({}, None),  # the generic phrase
    ],
)
def test_a_vietnamese_call_says_a_name_the_vietnamese_voice_can_pronounce(
    world: World, names: dict[str, str], expected: str | None
):
    if names:
        _set_names(world, names)
    say = _greeting(_call_says(world, "vi"))
    assert say.get("language") == "vi-VN"
    org = expected if expected is not None else render("name.org_generic", "vi")
    assert say.text == render("voice.greeting", "vi", org=org)
    assert not has_japanese_script(say.text or "")


def test_an_english_call_never_reads_kanji(world: World):
    root = _call_says(world, "en")
    spoken = " ".join(say.text or "" for say in root.iter("Say"))
    assert not has_japanese_script(spoken) and "your social welfare council" in spoken


@pytest.mark.parametrize(
    ("names", "expected"), [({"easy_ja": READING, "en": EN}, READING), ({"en": EN}, ORG)]
)
def test_a_japanese_call_says_the_kana_reading_and_without_it_the_kanji(
    world: World, names: dict[str, str], expected: str
):
    _set_names(world, names)
    say = _greeting(_call_says(world, "ja"))
    assert say.get("language") == "ja-JP"
    assert say.text == render("voice.greeting", "ja", org=expected)


# --- The API -------------------------------------------------------------------------------


def _audit(session: Session, entity_type: str) -> list[AuditEntry]:
    return list(
        session.execute(
            select(AuditEntry)
            .where(
                AuditEntry.entity_type == entity_type, AuditEntry.action.in_(("create", "update"))
            )
            .order_by(AuditEntry.at)
        ).scalars()
    )


def test_an_admin_sets_merges_and_removes_the_organizations_names(
    client: TestClient, admin: Staff, session: Session
):
    r = client.patch(
        "/api/v1/organization", headers=admin.headers, json={"names": {"en": EN, "vi": VI}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["names"] == {"en": EN, "vi": VI}
    r = client.patch(
        "/api/v1/organization",
        headers=admin.headers,
        json={"names": {"vi": None, "easy_ja": f"  {READING} "}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["names"] == {"easy_ja": READING, "en": EN}
    assert client.get("/api/v1/organization", headers=admin.headers).json()["names"] == {
        "easy_ja": READING,
        "en": EN,
    }
    entries = [e for e in _audit(session, "organization") if "names" in e.fields]
    assert len(entries) == 2
    assert entries[0].detail["before"] == {"names": {}}
    assert entries[1].detail["before"] == {"names": {"en": EN, "vi": VI}}
    assert all(e.actor_user_id == admin.user_id for e in entries)


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        ({"xx": "Wajima"}, "unknown language 'xx'"),
        ({"ja": "輪島"}, "names.ja"),
        ({"en": ""}, "names.en: the name cannot be empty"),
        ({"en": "W" * 201}, "at most 200"),
        ({"en": "Wajima\u0007"}, "control characters"),
        ({"en": ["Wajima"]}, "names.en"),
        ("Wajima", "expected an object"),
    ],
)
def test_bad_names_are_a_422_naming_the_field(
    client: TestClient, admin: Staff, coordinator: Staff, names: Any, fragment: str
):
    r = client.patch("/api/v1/organization", headers=admin.headers, json={"names": names})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"][:2] == ["body", "names"] and fragment in error["msg"], error
    site = client.post(
        "/api/v1/sites", headers=coordinator.headers, json={"name": SITE, "names": names}
    )
    assert site.status_code == 422, site.text
    assert site.json()["detail"][0]["loc"][:2] == ["body", "names"]


def test_null_names_are_refused_rather_than_wiping_them(client: TestClient, admin: Staff):
    r = client.patch("/api/v1/organization", headers=admin.headers, json={"names": None})
    assert r.status_code == 422 and "names" in r.text


def test_only_an_admin_changes_the_organizations_names(client: TestClient, coordinator: Staff):
    r = client.patch(
        "/api/v1/organization", headers=coordinator.headers, json={"names": {"en": EN}}
    )
    assert r.status_code == 403


def test_sites_take_names_on_creation_and_merge_them_on_update(
    client: TestClient, coordinator: Staff, other_org_admin: Staff, session: Session
):
    r = client.post(
        "/api/v1/sites",
        headers=coordinator.headers,
        json={"name": SITE, "names": {"en": SITE_EN, "easy_ja": "たくだまち だい2 だんち"}},
    )
    assert r.status_code == 201, r.text
    site_id = r.json()["id"]
    assert r.json()["names"] == {"easy_ja": "たくだまち だい2 だんち", "en": SITE_EN}
    r = client.patch(
        f"/api/v1/sites/{site_id}",
        headers=coordinator.headers,
        json={"names": {"easy_ja": None, "vi": "Khu nhà Takuda số 2"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["names"] == {"en": SITE_EN, "vi": "Khu nhà Takuda số 2"}
    assert (
        client.get(f"/api/v1/sites/{site_id}", headers=other_org_admin.headers).status_code == 404
    )
    updates = [e for e in _audit(session, "site") if e.action == "update"]
    assert [e.fields for e in updates] == [["names"]]
    stored = session.get(Site, uuid.UUID(site_id))
    assert stored is not None and stored.names["vi"] == "Khu nhà Takuda số 2"


# --- The CLI -------------------------------------------------------------------------------


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MIMAMORI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MIMAMORI_DATABASE_URL": database_url, "COLUMNS": "200"},
    )


def test_the_cli_sets_names_and_i18n_status_counts_with_them(
    database_url: str, engine, session: Session
):
    from service.auth.service import get_or_create_organization

    get_or_create_organization(session=session, name=ORG)
    session.commit()

    before = json.loads(_cli(database_url, "i18n", "status", "--json", "--org", ORG).stdout)
    english = {row["code"]: row for row in before}["en"]
    assert english["sms_encoding"] == "UCS-2" and english["org_name"] == ORG

    done = _cli(database_url, "org", "name", "set", "--lang", "en", EN, "--org", ORG)
    assert done.returncode == 0, done.stderr
    assert f"en: {EN}" in done.stdout
    done = _cli(database_url, "org", "name", "set", "--lang", "やさしい日本語", READING)
    assert done.returncode == 0, done.stderr

    after = {
        row["code"]: row
        for row in json.loads(_cli(database_url, "i18n", "status", "--json", "--org", ORG).stdout)
    }
    for code in ("en", "fil", "id"):
        assert after[code]["sms_encoding"] == "GSM-7", code
        assert after[code]["org_name"] == EN
    assert after["easy_ja"]["org_name"] == READING

    table = _cli(database_url, "i18n", "status", "--org", ORG)
    assert table.returncode == 0, table.stderr
    assert f"{ORG} from the database" in " ".join(table.stdout.split())

    bad = _cli(database_url, "org", "name", "set", "--lang", "klingon", "Qapla")
    assert bad.returncode == 1 and "unknown language 'klingon'" in bad.stderr
    empty = _cli(database_url, "org", "name", "set", "--lang", "vi", "   ")
    assert empty.returncode == 1 and "names.vi: the name cannot be empty" in empty.stderr

    removed = _cli(database_url, "org", "name", "remove", "--lang", "en")
    assert removed.returncode == 0, removed.stderr
    session.expire_all()
    org = session.execute(select(Organization).where(Organization.name == ORG)).scalar_one()
    assert org.names == {"easy_ja": READING}
    cli_entries = [e for e in _audit(session, "organization") if e.actor.startswith("cli:")]
    assert len(cli_entries) == 3 and all(e.fields == ["names"] for e in cli_entries)


def test_the_cli_sets_a_sites_names(database_url: str, engine, session: Session):
    from service.auth.service import get_or_create_organization

    org = get_or_create_organization(session=session, name=ORG)
    session.add(Site(name=SITE, organization_id=org.id))
    session.commit()
    done = _cli(database_url, "site", "name", "set", "--site", SITE, "--lang", "en", SITE_EN)
    assert done.returncode == 0, done.stderr
    missing = _cli(database_url, "site", "name", "set", "--site", "どこか", "--lang", "en", "X")
    assert missing.returncode == 1 and "No site named" in missing.stderr
    session.expire_all()
    site = session.execute(select(Site).where(Site.name == SITE)).scalar_one()
    assert site.names == {"en": SITE_EN}


# --- The migration -------------------------------------------------------------------------


def test_organizations_and_sites_from_before_0009_have_no_names_and_keep_them_down_and_up(
    tmp_path: Path,
):
    """An existing council keeps its Japanese name everywhere until someone adds others;
    going down to 0008 drops the names and nothing else."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import text

    from service import migrate
    from service.db import make_engine

    url = f"sqlite:///{tmp_path / 'names.db'}"
    config = migrate.alembic_config(url)
    command.upgrade(config, "0008")
    engine = make_engine(url)
    org_id, site_id = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO organization (id, name, timezone, created_at)"
                " VALUES (:id, :name, 'Asia/Tokyo', :now)"
            ),
            {"id": org_id.hex, "name": ORG, "now": now},
        )
        c.execute(
            text(
                "INSERT INTO site (id, organization_id, name, created_at, updated_at)"
                " VALUES (:id, :org, :name, :now, :now)"
            ),
            {"id": site_id.hex, "org": org_id.hex, "name": SITE, "now": now},
        )
    engine.dispose()
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s:
        org = s.get(Organization, org_id)
        site = s.get(Site, site_id)
        assert org is not None and org.names == {}
        assert site is not None and site.names == {}
        org.names = {"en": EN}
        s.add(org)
        s.commit()
    engine.dispose()
    command.downgrade(config, "0008")
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.connect() as c:
        assert c.execute(text("SELECT name FROM organization")).scalar_one() == ORG
        assert c.execute(text("SELECT count(*) FROM site")).scalar_one() == 1
    with Session(engine) as s:
        org = s.get(Organization, org_id)
        assert org is not None and org.names == {}
    engine.dispose()
