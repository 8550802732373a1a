"""Issue 18: bad input is a clear error naming the problem, never a 500 or a traceback.

NUL characters matter most on PostgreSQL, which cannot store them in text: run this file with
MIMAMORI_TEST_DATABASE_URL too (CI does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from service.auth.models import Role
from service.auth.service import get_or_create_organization
from tests.conftest import REPO
from tests.web.conftest import FormClient, add_staff

HEADER = "管理番号,氏名,電話番号,備考\r\n"


def _import(client: TestClient, headers: dict[str, str], data: bytes, **params: str):
    return client.post(
        "/api/v1/import/residents",
        headers=headers,
        params={"dry_run": "true", **params},
        files={"file": ("r.csv", data, "text/csv")},
    )


# --- Unclosed quotes --------------------------------------------------------------------------


def test_a_quote_closed_rows_later_is_a_row_error_naming_the_line(client, coordinator) -> None:
    text = (
        HEADER
        + "A1,山田 花子,090-1111-0001,\r\n"
        + 'A2,"佐藤 一郎,090-1111-0002,\r\n'  # the quote opens here ...
        + 'A3,鈴木 次郎",090-1111-0003,\r\n'  # ... and closes one line later
        + "A4,高橋 三郎,090-1111-0004,\r\n"
    )
    response = _import(client, coordinator.headers, text.encode("utf-8"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["total_rows"] == 3
    [error] = report["errors"]
    assert error["row"] == 3
    assert "line 3" in error["reason"] and "4" in error["reason"]
    assert report["created"] == 2  # A1 and A4 would be created; the merged row is not


def test_a_quote_never_closed_is_a_row_error(client, coordinator) -> None:
    text = (
        HEADER + "A1,山田 花子,090-1111-0001,\r\n" + 'A2,"佐藤 一郎,090-1111-0002,\r\nA3,x,y,\r\n'
    )
    report = _import(client, coordinator.headers, text.encode("utf-8")).json()
    [error] = report["errors"]
    assert error["row"] == 3
    assert "never closed" in error["reason"]


def test_a_note_over_several_lines_still_imports(client, coordinator) -> None:
    text = (
        HEADER + 'A1,山田 花子,090-1111-0001,"一行目\r\n二行目"\r\nA2,佐藤 一郎,090-1111-0002,\r\n'
    )
    response = _import(client, coordinator.headers, text.encode("utf-8"), dry_run="false")
    report = response.json()
    assert report["errors"] == [] and report["created"] == 2, report


# --- Encodings --------------------------------------------------------------------------------

BOM_THEN_CP932 = b"\xef\xbb\xbf" + (HEADER + "A1,山田 花子,090-1111-0001,\r\n").encode("cp932")


def test_a_bom_before_cp932_is_a_clear_422(client, coordinator) -> None:
    response = _import(client, coordinator.headers, BOM_THEN_CP932)
    assert response.status_code == 422, response.text
    message = response.json()["detail"][0]["msg"]
    assert "byte order mark" in message and "line 1" in message


def test_a_bom_before_cp932_in_the_dashboard_is_a_message(
    client, engine, forms: FormClient
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post(
        "/registry/import",
        {"kind": "residents"},
        files={"file": ("r.csv", BOM_THEN_CP932, "text/csv")},
    )
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert "UTF-8 の BOM があります" in page.text  # in the staff member's language (issue 19)


def test_the_cli_reports_a_bom_before_cp932_without_a_traceback(
    database_url: str, engine, tmp_path: Path
) -> None:
    with Session(engine) as session:
        get_or_create_organization(session=session, name="輪島市社会福祉協議会")
        session.commit()
    file = tmp_path / "residents.csv"
    file.write_bytes(BOM_THEN_CP932)
    env = {**os.environ, "MIMAMORI_DATABASE_URL": database_url, "COLUMNS": "200"}
    run = [sys.executable, "-m", "service.cli"]
    result = subprocess.run(
        [*run, "import", "residents", str(file), "--dry-run"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "byte order mark" in output


# --- NUL characters ---------------------------------------------------------------------------


def test_a_nul_in_a_csv_cell_is_a_row_error(client, coordinator) -> None:
    text = HEADER + "A1,山田\x00花子,090-1111-0001,\r\nA2,佐藤 一郎,090-1111-0002,\r\n"
    response = _import(client, coordinator.headers, text.encode("utf-8"), dry_run="false")
    assert response.status_code == 200, response.text
    report = response.json()
    [error] = report["errors"]
    assert error["row"] == 2 and "NUL" in error["reason"]
    assert report["applied"] is False  # all or nothing, as for any bad row
    response = _import(
        client, coordinator.headers, text.encode("utf-8"), dry_run="false", apply_valid_rows="true"
    )
    report = response.json()
    assert report["created"] == 1 and report["rejected"] == 1
    assert "\x00" not in report["reject_csv"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/residents", {"q": "山田\x00"}),
        ("/api/v1/residents", {"language": "\x00"}),
        ("/api/v1/members", {"q": "\x00"}),
        ("/api/v1/audit", {"entity_type": "x\x00"}),
    ],
)
def test_a_nul_in_a_query_parameter_is_a_422_naming_it(client, coordinator, path, params) -> None:
    response = client.get(path, headers=coordinator.headers, params=params)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["query", next(iter(params))]
    assert "NUL" in detail["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"external_id": "N1", "name": "山田\x00花子", "phone": "090-1111-0001"},
        {"external_id": "N\x00", "name": "山田 花子", "phone": "090-1111-0001"},
        {"external_id": "N1", "name": "山田 花子", "phone": "090-1111-0001", "notes": "\x00"},
    ],
)
def test_a_nul_in_a_json_body_is_a_422_naming_the_field(client, coordinator, body) -> None:
    response = client.post("/api/v1/residents", headers=coordinator.headers, json=body)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    field = next(k for k, v in body.items() if "\x00" in v)
    assert detail["loc"] == ["body", field]
    listed = client.get("/api/v1/residents", headers=coordinator.headers)
    assert listed.json()["count"] == 0


def test_a_nul_in_a_patch_and_in_a_dashboard_form_is_refused(
    client, coordinator, engine, forms: FormClient
) -> None:
    created = client.post(
        "/api/v1/residents",
        headers=coordinator.headers,
        json={"external_id": "N1", "name": "山田 花子", "phone": "090-1111-0001"},
    )
    resident = created.json()["id"]
    response = client.patch(
        f"/api/v1/residents/{resident}", headers=coordinator.headers, json={"name": "x\x00"}
    )
    assert response.status_code == 422, response.text
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post(f"/residents/{resident}/note", {"text": "メモ\x00"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "text"]
    page = client.get("/residents", params={"q": "山田\x00"})
    assert page.status_code == 422
