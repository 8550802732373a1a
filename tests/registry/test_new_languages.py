"""Residents in Mongolian, Bengali, Urdu, Hindi and Tamil, registered the ways staff do it:
through the API, and from a spreadsheet in CP932 with Japanese names or in UTF-8 with the
languages' own names."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from service.audit.service import Actor
from service.registry import csv_io
from service.registry.models import Resident
from tests.conftest import Staff

ACTOR = Actor(label="test")
NEW_CODES = ("mn", "bn", "ur", "hi", "ta")
# What a council's spreadsheet says, in Japanese (CP932 holds these) ...
JAPANESE = {
    "mn": "モンゴル語",
    "bn": "ベンガル語",
    "ur": "ウルドゥー語",
    "hi": "ヒンディー語",
    "ta": "タミル語",
}
# ... and in the languages' own words, or as an English name or a tag (UTF-8 only).
OWN_WORDS = {"mn": "Монгол хэл", "bn": "বাংলা", "ur": "اردو", "hi": "हिंदी", "ta": "தமிழ்"}
OTHER_SPELLINGS = {"mn": "Mongolian", "bn": "bn-BD", "ur": "ur-PK", "hi": "Hindi", "ta": "ta-LK"}


def _create(client: TestClient, staff: Staff, language: str) -> dict:
    body = {
        "external_id": f"R{uuid.uuid4().hex[:6]}",
        "name": "Test Resident",
        "phone": "090-1234-5678",
        "language": language,
    }
    r = client.post("/api/v1/residents", headers=staff.headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("code", NEW_CODES)
def test_a_resident_is_registered_through_the_api_with_each_new_language(
    client: TestClient, coordinator: Staff, code: str
) -> None:
    for spelling in (code, JAPANESE[code], OWN_WORDS[code], OTHER_SPELLINGS[code]):
        created = _create(client, coordinator, spelling)
        assert created["language"] == code, spelling
        fetched = client.get(f"/api/v1/residents/{created['id']}", headers=coordinator.headers)
        assert fetched.status_code == 200 and fetched.json()["language"] == code
    listed = client.get(
        "/api/v1/residents", headers=coordinator.headers, params={"language": code}
    ).json()
    assert listed["count"] == 4


def test_changing_a_resident_to_a_new_language_through_the_api(
    client: TestClient, coordinator: Staff
) -> None:
    created = _create(client, coordinator, "ja")
    r = client.patch(
        f"/api/v1/residents/{created['id']}",
        headers=coordinator.headers,
        json={"language": "ウルドゥー語"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["language"] == "ur"


def _import(session: Session, org_id: uuid.UUID, data: bytes) -> csv_io.ImportReport:
    report = csv_io.import_csv(
        session=session, organization_id=org_id, kind="residents", data=data, actor=ACTOR
    )
    assert report.applied, [str(e) for e in report.errors]
    session.commit()
    return report


def _languages(session: Session, org_id: uuid.UUID) -> dict[str, str]:
    rows = session.exec(select(Resident).where(Resident.organization_id == org_id)).all()
    return {r.external_id: r.language for r in rows}


def test_a_cp932_spreadsheet_with_japanese_language_names(
    session: Session, coordinator: Staff
) -> None:
    text = "管理番号,氏名,電話番号,言語\r\n" + "".join(
        f"N-{code},住民 {n},090-2000-{n:04d},{JAPANESE[code]}\r\n"
        for n, code in enumerate(NEW_CODES, start=1)
    )
    report = _import(session, coordinator.org_id, text.encode("cp932"))
    assert report.encoding == "cp932" and report.created == len(NEW_CODES)
    assert _languages(session, coordinator.org_id) == {f"N-{code}": code for code in NEW_CODES}


def test_a_utf8_spreadsheet_with_the_languages_own_names_round_trips(
    session: Session, coordinator: Staff
) -> None:
    text = "external_id,name,phone,language\n" + "".join(
        f"U-{code},Resident {n},090-3000-{n:04d},{OWN_WORDS[code]}\n"
        f"V-{code},Resident {n}b,090-4000-{n:04d},{OTHER_SPELLINGS[code]}\n"
        for n, code in enumerate(NEW_CODES, start=1)
    )
    report = _import(session, coordinator.org_id, b"\xef\xbb\xbf" + text.encode())
    assert report.created == 2 * len(NEW_CODES)
    stored = _languages(session, coordinator.org_id)
    assert stored == {f"{prefix}-{code}": code for code in NEW_CODES for prefix in ("U", "V")}
    # An export re-imports as a no-op: the codes are stored and written back as such.
    exported = csv_io.export_residents(
        session=session, organization_id=coordinator.org_id, actor=ACTOR
    )
    again = _import(session, coordinator.org_id, exported)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2 * len(NEW_CODES))


def test_an_unknown_language_in_a_spreadsheet_is_named_not_guessed(
    session: Session, coordinator: Staff
) -> None:
    text = "管理番号,氏名,電話番号,言語\r\nX-1,住民 X,090-5000-0001,パンジャブ語\r\n"
    report = csv_io.import_csv(
        session=session,
        organization_id=coordinator.org_id,
        kind="residents",
        data=text.encode("cp932"),
        actor=ACTOR,
    )
    session.rollback()
    assert not report.applied
    [error] = report.errors
    assert "unsupported language" in str(error.reason) and "ur" in str(error.reason)
