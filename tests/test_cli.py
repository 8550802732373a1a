"""The `mimamori` command as an operator runs it: real processes, real files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import func
from sqlmodel import Session, select

from service.registry.models import Resident
from tests.registry.test_csv_import import BAD_ROWS, GOOD_ROWS, cp932_file

MIMAMORI = str(Path(sys.executable).parent / "mimamori")
DESIGN_COMMANDS = [
    "serve",
    "scheduler",
    "db",
    "user",
    "import",
    "export",
    "round",
    "i18n",
    "simulate",
    "demo",
]


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [MIMAMORI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_help_lists_every_command_named_in_the_design():
    result = run("--help", check=True)
    for command in DESIGN_COMMANDS:
        assert f" {command} " in result.stdout, command
    for group, subcommands in {
        "db": ["upgrade"],
        "user": ["create"],
        "import": ["residents", "members", "assignments"],
        "export": ["residents"],
        "round": ["start"],
        "i18n": ["status"],
        "simulate": ["sms", "call"],
    }.items():
        sub = run(group, "--help", check=True)
        for name in subcommands:
            assert f" {name} " in sub.stdout, (group, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_on_a_fresh_directory_creates_its_database_and_answers(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    port = _free_port()
    process = subprocess.Popen(
        [MIMAMORI, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read() if process.stdout else ""
                    raise AssertionError(output) from exc
                time.sleep(0.3)
        assert health.json() == {"status": "ok"}
        # The embedded scheduler writes its first heartbeat within seconds of starting.
        for _ in range(40):
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if ready.status_code == 200:
                break
            time.sleep(0.5)
        assert ready.status_code == 200, ready.text
        assert (tmp_path / "mimamori.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_user_create_import_with_rejects_and_export(tmp_path, database_url, engine):
    env = {"MIMAMORI_DATABASE_URL": database_url}
    run("db", "upgrade", env=env, check=True)
    created = run(
        "user",
        "create",
        "--email",
        "admin@wajima.example",
        "--name",
        "管理 者",
        "--org",
        "輪島市社会福祉協議会",
        "--password",
        "a long enough password",
        env=env,
        check=True,
    )
    assert "Created admin" in created.stderr
    source = tmp_path / "residents.csv"
    source.write_bytes(cp932_file(GOOD_ROWS + BAD_ROWS))

    dry = run("import", "residents", str(source), "--dry-run", env=env)
    assert dry.returncode == 1  # a file with bad rows fails, so scripts notice
    for line in ("7", "8", "9"):
        assert f"│ {line} " in dry.stdout or f"| {line} " in dry.stdout, dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout

    refused = run("import", "residents", str(source), env=env)
    assert refused.returncode == 1
    assert "Nothing was changed" in refused.stdout
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Resident)).one() == 0

    applied = run("import", "residents", str(source), "--apply-valid-rows", env=env, check=True)
    assert "5 were created" in applied.stdout
    rejects = tmp_path / "residents.rejects.csv"
    text = rejects.read_bytes().decode("cp932")
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == ["W-006", "W-007", "W-008"]
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Resident)).one() == 5

    again = run(
        "import", "residents", str(source), "--apply-valid-rows", "--json", env=env, check=True
    )
    assert '"created": 0' in again.stdout and '"unchanged": 5' in again.stdout

    target = tmp_path / "export.csv"
    run("export", "residents", str(target), "--encoding", "cp932", env=env, check=True)
    assert target.read_bytes().decode("cp932").count("\r\n") == 6


def test_import_of_a_missing_file_is_a_clear_error(tmp_path, database_url):
    env = {"MIMAMORI_DATABASE_URL": database_url}
    run(
        "user",
        "create",
        "--email",
        "a@b.jp",
        "--name",
        "A",
        "--org",
        "X",
        "--password",
        "a long enough password",
        env=env,
        check=True,
    )
    result = run("import", "residents", str(tmp_path / "nope.csv"), env=env)
    assert result.returncode == 1 and "Cannot read" in result.stderr


def test_round_start_and_schedules_from_the_command_line(tmp_path, database_url):
    env = {"MIMAMORI_DATABASE_URL": database_url}
    run("user", "create", "--email", "a@b.jp", "--name", "A", "--org", "輪島市社会福祉協議会",
        "--password", "a long enough password", env=env, check=True)
    source = tmp_path / "residents.csv"
    source.write_bytes(cp932_file(GOOD_ROWS))
    run("import", "residents", str(source), env=env, check=True)
    created = run("schedule", "create", "--name", "毎朝の見守り", "--at", "10:00",
                  "--site", "河井町団地", env=env, check=True)
    assert "next run" in created.stdout
    bad = run("schedule", "create", "--name", "x", "--at", "25:00", env=env)
    assert bad.returncode == 1 and "HH:MM" in bad.stderr
    both = run("schedule", "create", "--name", "x", "--site", "河井町団地", "--flag",
               "lives_alone", env=env)
    assert both.returncode == 1 and "--site or --flag" in both.stderr
    listed = run("schedule", "list", env=env, check=True)
    assert "毎朝の見守り" in listed.stdout and "sites" in listed.stdout
    started = run("round", "start", "--site", "河井町団地", "--override-quiet-hours", env=env,
                  check=True)
    # 河井町団地 has W-003, W-004 (away) and W-005; nobody has recorded consent in that file,
    # so those who are not away go on the visit list rather than silently nowhere.
    assert "3 residents" in started.stdout and "2 on the visit list" in started.stdout
    missing = run("round", "start", "--site", "どこにもない団地", env=env)
    assert missing.returncode == 1 and "No site named" in missing.stderr
    one = run("round", "start", "--resident", "W-003", "--override-quiet-hours", env=env,
              check=True)
    assert "1 residents" in one.stdout and "1 on the visit list" in one.stdout
    nobody = run("round", "start", "--resident", "W-999", env=env)
    assert nobody.returncode == 1 and "W-999" in nobody.stderr
    both = run("round", "start", "--site", "河井町団地", "--resident", "W-003", env=env)
    assert both.returncode == 1 and "--site or --resident" in both.stderr
    schedule_id = created.stdout.split()[1]
    paused = run("schedule", "pause", schedule_id, env=env, check=True)
    assert "paused" in paused.stdout
    assert " no " in run("schedule", "list", env=env, check=True).stdout
    resumed = run("schedule", "resume", schedule_id, env=env, check=True)
    assert "next run" in resumed.stdout
    assert run("schedule", "pause", "not-an-id", env=env).returncode == 1
    moved = run("schedule", "update", schedule_id, "--at", "09:30", "--weekday", "0",
                env=env, check=True)
    assert "updated" in moved.stdout and "09:30" in run("schedule", "list", env=env).stdout
    bad_time = run("schedule", "update", schedule_id, "--at", "9.30", env=env)
    assert bad_time.returncode == 1 and "HH:MM" in bad_time.stderr
    assert run("schedule", "update", schedule_id, env=env).returncode == 1  # nothing to change
