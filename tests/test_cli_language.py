"""Issue 19: the command line, CSV row errors and API error details speak the reader's language
(Japanese by default, English on request), and print times in the organization's timezone."""

from __future__ import annotations

import ast
import enum
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pytest
import typer

from service.clock import FakeClock, SystemClock, set_clock
from service.registry import csv_io
from service.texts import N_, accept_language, cli_language
from tests.registry.test_csv_import import BAD_ROWS, GOOD_ROWS, cp932_file

MIMAMORI = str(Path(sys.executable).parent / "mimamori")
REPO = Path(__file__).resolve().parents[1]
ORG = "輪島市社会福祉協議会"
OTHER_ORG = "七尾市社会福祉協議会"
PASSWORD = "a long enough password"

# What may stay ASCII in Japanese output: option names, commands, codes, placeholders of a
# usage line and what the user typed. Typer's own words ("Usage:", "Options", "Show this message
# and exit.", its usage errors) are Japanese too (service/cli/chrome.py).
CLICK_CHROME = (
    "[OPTIONS] COMMAND [ARGS]...",
    "[OPTIONS]",
    "[ARGS]",
    "TEXT",
    "INTEGER",
    "PATH",
    "--help",
)
# Typer's chrome in single words, which the sentence pattern below does not see.
_CHROME_WORDS = re.compile(
    r"\b(?:Usage|Options|Commands|Arguments|Error|Aborted)\b|\[(?:default|required|env var)\b"
    r"|\bTry '"
)
# Three or more English words in a row (a sentence fragment), not inside an option or code.
_SENTENCE = re.compile(r"(?<![-\w./`'])[A-Za-z][a-z]+(?:[ ,;:]+[A-Za-z][a-z]+){2,}")
_ALLOWED_PHRASES = (
    "Messaging Service",
    "Easy Japanese",
    "mimamori user create",
    "mimamori db upgrade",
)


def english_sentences(text: str, typed: tuple[str, ...] = ()) -> list[str]:
    """English phrases in ``text``, leaving out what the user typed (``typed``), commands
    (``mimamori …``) and lists of language codes (no word of four letters or more)."""
    for chrome in (*CLICK_CHROME, *typed):
        text = text.replace(chrome, " ")
    text = re.sub(r"mimamori(?: [a-z][a-z-]*)+", " ", text)
    found = _CHROME_WORDS.findall(text)
    for match in _SENTENCE.finditer(text):
        phrase = match.group(0)
        if not any(len(word) >= 4 for word in re.findall(r"[A-Za-z]+", phrase)):
            continue
        if not any(allowed in phrase or phrase in allowed for allowed in _ALLOWED_PHRASES):
            found.append(phrase)
    return found


def test_the_sentence_detector_finds_english_and_passes_japanese() -> None:
    assert english_sentences("No organization named 'x'.") == ["No organization named"]
    assert (
        english_sentences("組織 'x' はありません。--org を指定してください（例: --org A）。") == []
    )
    assert english_sentences("予定 3f2a-… を作りました。次回: 2026/12/08 10:00。") == []
    assert english_sentences("Usage: mimamori user [OPTIONS]\n╭─ Options ─╮") == [
        "Usage",
        "Options",
    ]
    assert english_sentences("使い方: mimamori user [OPTIONS]\n╭─ オプション ─╮") == []


# --- Choosing the language ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "ja"),  # an installation is Japanese, like the dashboard
        ({"LANG": "C.UTF-8"}, "ja"),
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "ja"),
        ({"LC_ALL": "en_GB.UTF-8", "LANG": "ja_JP.UTF-8"}, "en"),
        ({"LC_ALL": "ja_JP.UTF-8", "LANG": "en_US.UTF-8"}, "ja"),
        ({"MIMAMORI_LANGUAGE": "en", "LC_ALL": "ja_JP.UTF-8"}, "en"),
        ({"MIMAMORI_LANGUAGE": "ja", "LANG": "en_US.UTF-8"}, "ja"),
        ({"MIMAMORI_LANGUAGE": "xx", "LANG": "en_US.UTF-8"}, "en"),
    ],
)
def test_the_command_line_language_follows_mimamori_language_then_the_locale(
    environ: dict[str, str], expected: str
) -> None:
    assert cli_language(environ=environ) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("ja", "ja"),
        ("ja-JP", "ja"),
        ("ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7", "ja"),
        ("en-US,en;q=0.9,ja;q=0.8", "en"),
        ("en;q=0.5, ja;q=0.8", "ja"),
        ("fr-FR, ja;q=0.3", "ja"),
        ("ja;q=0", "en"),
        ("*", "en"),
        ("de", "en"),
        ("ja;q=abc", "en"),
    ],
)
def test_the_api_answers_in_japanese_only_when_asked(header: str | None, expected: str) -> None:
    assert accept_language(header) == expected


def test_every_text_renders_in_both_languages_with_its_values() -> None:
    text = N_("No site named %(name)s.", name="'A団地'")
    assert text.render("en") == "No site named 'A団地'."
    assert text.render("ja") == "'A団地' という団地はありません。"
    assert str(text) == text.render("en")


# --- The command line, run as an operator runs it ------------------------------------------------


def run(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MIMAMORI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env={**os.environ, "COLUMNS": "200", **env},
    )


@pytest.fixture
def ja_env(database_url: str) -> dict[str, str]:
    return {"MIMAMORI_DATABASE_URL": database_url, "MIMAMORI_LANGUAGE": "ja"}


def _user(env: dict[str, str], email: str, org: str) -> None:
    made = run(
        "user",
        "create",
        "--email",
        email,
        "--name",
        "管理 者",
        "--org",
        org,
        "--password",
        PASSWORD,
        env=env,
    )
    assert made.returncode == 0, made.stderr


def test_every_command_speaks_japanese(tmp_path: Path, ja_env: dict[str, str]) -> None:
    """Results, errors and help of every command path, with LANG=ja: no English sentence."""
    env = ja_env
    _user(env, "admin@wajima.example", ORG)
    source = tmp_path / "residents.csv"
    source.write_bytes(cp932_file(GOOD_ROWS + BAD_ROWS))
    schedule = run("schedule", "create", "--name", "毎朝の見守り", "--at", "10:00", env=env)
    assert schedule.returncode == 0, schedule.stderr
    schedule_id = schedule.stdout.split()[1]
    calls: list[tuple[str, ...]] = [
        ("--help",),
        (
            "user",
            "create",
            "--email",
            "bad login!",
            "--name",
            "A",
            "--org",
            ORG,
            "--password",
            PASSWORD,
        ),
        (
            "user",
            "create",
            "--email",
            "admin@wajima.example",
            "--name",
            "A",
            "--org",
            ORG,
            "--password",
            PASSWORD,
        ),
        ("user", "set-password", "--email", "nobody@example.jp", "--password", PASSWORD),
        ("user", "set-password", "--email", "admin@wajima.example", "--password", "short"),
        (
            "user",
            "set-password",
            "--email",
            "admin@wajima.example",
            "--password",
            "another long enough password",
        ),
        ("import", "residents", str(tmp_path / "missing.csv")),
        ("import", "residents", str(source), "--dry-run"),
        ("import", "residents", str(source)),
        ("import", "residents", str(source), "--apply-valid-rows"),
        ("import", "members", str(source)),
        ("export", "residents", str(tmp_path / "out.csv"), "--encoding", "latin-1"),
        ("export", "residents", str(tmp_path / "out.csv")),
        ("round", "start", "--site", "どこにもない団地"),
        ("round", "start", "--resident", "W-999"),
        ("round", "start", "--site", "河井町団地", "--resident", "W-003"),
        ("round", "start", "--site", "河井町団地"),
        ("round", "start", "--site", "河井町団地", "--override-quiet-hours"),
        ("schedule", "create", "--name", "x", "--at", "25:00"),
        ("schedule", "create", "--name", "x", "--site", "河井町団地", "--flag", "lives_alone"),
        ("schedule", "create", "--name", "x", "--weekday", "9"),
        ("schedule", "list"),
        ("schedule", "pause", schedule_id),
        ("schedule", "resume", schedule_id),
        ("schedule", "update", schedule_id),
        ("schedule", "update", schedule_id, "--at", "9.30"),
        ("schedule", "update", schedule_id, "--at", "09:30"),
        ("schedule", "pause", "not-an-id"),
        ("schedule", "delete", schedule_id),
        ("org", "name", "set", "Wajima Council", "--lang", "en"),
        ("org", "name", "set", "Wajima", "--lang", "xx"),
        ("org", "name", "list"),
        ("org", "name", "remove", "--lang", "en"),
        ("site", "name", "set", "Kawai-machi", "--lang", "en", "--site", "河井町団地"),
        ("site", "name", "list", "--site", "どこにもない団地"),
        ("org", "senders", "list"),
        ("org", "senders", "add", "050-1234-5678"),
        ("org", "senders", "add", "not a number"),
        ("org", "senders", "remove", "abc"),
        ("org", "senders", "service", ""),
        ("simulate", "sms", "1", "--from", "abc"),
        ("simulate", "call", "--to", "abc"),
        ("simulate", "call", "--to", "090-1111-2222"),
    ]
    groups = [
        "db",
        "user",
        "import",
        "export",
        "round",
        "schedule",
        "org",
        "site",
        "simulate",
        "i18n",
    ]
    calls += [(group, "--help") for group in groups]
    calls += [("schedule", name, "--help") for name in ("create", "list", "update")]
    calls += [("round", "start", "--help"), ("import", "residents", "--help"), ("serve", "--help")]
    failures = {}
    for call in calls:
        result = run(*call, env=env)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, (call, output)
        found = english_sentences(output, typed=("Wajima Council", "Kawai-machi"))
        if found:
            failures[" ".join(call)] = found
    assert failures == {}, "\n".join(f"{call}: {found}" for call, found in failures.items())


def _local(text: str) -> list[str]:
    return re.findall(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}", text)


def test_schedules_print_the_organizations_local_time(ja_env: dict[str, str]) -> None:
    _user(ja_env, "admin@wajima.example", ORG)
    created = run("schedule", "create", "--name", "毎朝の見守り", "--at", "10:00", env=ja_env)
    assert created.returncode == 0, created.stderr
    assert "+00:00" not in created.stdout and "UTC" not in created.stdout
    [when] = _local(created.stdout)
    assert when.endswith(" 10:00"), created.stdout  # 10:00 in Tokyo, not 01:00+00:00
    listed = run("schedule", "list", env=ja_env)
    assert "+00:00" not in listed.stdout
    assert _local(listed.stdout) == [when]
    assert "月 火 水 木 金 土 日" in listed.stdout and "全住民" in listed.stdout
    english = run("schedule", "list", env={**ja_env, "MIMAMORI_LANGUAGE": "en"})
    assert _local(english.stdout) == [when] and "Mon Tue Wed" in english.stdout


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    clock = FakeClock(datetime(2026, 12, 7, 14, 30, tzinfo=UTC))  # 23:30 in Tokyo
    set_clock(clock)
    yield clock
    set_clock(SystemClock())


def test_round_start_in_quiet_hours_says_when_the_messages_go_out(
    tmp_path: Path, ja_env: dict[str, str], fake_clock: FakeClock
) -> None:
    from typer.testing import CliRunner

    from service.cli import app

    _user(ja_env, "admin@wajima.example", ORG)
    source = tmp_path / "residents.csv"
    rows = "".join(
        f"W-1{n}{k},能登 花子{n}{k},090-1234-5{n}{k}0,日本語,{site},2026/11/01\r\n"
        for n, site in enumerate(("第1団地", "第2団地", "第3団地", "第4団地"))
        for k in range(2)
    )
    source.write_bytes(("管理番号,氏名,電話番号,言語,団地,同意日\r\n" + rows).encode("cp932"))
    imported = run("import", "residents", str(source), env=ja_env)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    runner = CliRunner()

    def output(site: str, *extra: str, language: str = "ja") -> str:
        result = runner.invoke(
            app, ["round", "start", "--site", site, *extra], env={"MIMAMORI_LANGUAGE": language}
        )
        assert result.exit_code == 0, result.output
        return result.output.replace("\n", "")  # Rich wraps long lines

    # Two consenting residents a site; at 23:30 in Tokyo the messages wait for 08:00.
    quiet = output("第1団地")
    assert (
        "送信を控える時間に始めました" in quiet and "住民 2 人。2 人へのメッセージは待機" in quiet
    )
    assert "2026/12/08 08:00 に送られます" in quiet and "連絡中" not in quiet
    english = output("第2団地", language="en")
    assert "the messages to 2 wait and go out at 2026/12/08 08:00" in english
    assert "being contacted" not in english
    loud = output("第3団地", "--override-quiet-hours")
    assert "連絡中 2 人" in loud and "送信を控える" not in loud
    fake_clock.set(datetime(2026, 12, 8, 1, 0, tzinfo=UTC))  # 10:00 in Tokyo
    day = output("第4団地")
    assert "連絡中 2 人" in day and "08:00" not in day


def test_serve_says_how_to_make_the_first_login(tmp_path: Path) -> None:
    """On a new installation `serve` names `mimamori user create` before anything else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    env.update({"MIMAMORI_LANGUAGE": "ja", "MIMAMORI_EMBEDDED_SCHEDULER": "false"})
    with socket.socket() as taken:  # a port in use: serve says its piece, then stops
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = subprocess.Popen(
            [MIMAMORI, "serve", "--port", str(taken.getsockname()[1])],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            output, _ = process.communicate(timeout=120)
        finally:
            process.kill()
    assert "mimamori user create" in output and "最初のログイン" in output, output


def test_export_with_two_organizations_names_them_and_the_option(
    tmp_path: Path, ja_env: dict[str, str]
) -> None:
    _user(ja_env, "admin@wajima.example", ORG)
    _user(ja_env, "admin@nanao.example", OTHER_ORG)
    target = tmp_path / "residents.csv"
    refused = run("export", "residents", str(target), env=ja_env)
    assert refused.returncode == 1 and not target.exists()
    assert "--org" in refused.stderr and ORG in refused.stderr and OTHER_ORG in refused.stderr
    english = run("export", "residents", str(target), env={**ja_env, "MIMAMORI_LANGUAGE": "en"})
    assert "There are 2 organizations" in english.stderr and "--org" in english.stderr
    chosen = run("export", "residents", str(target), "--org", ORG, env=ja_env)
    assert chosen.returncode == 0, chosen.stderr
    assert target.exists()


def _flat(text: str) -> str:
    """Output with Rich's wrapping undone (a long name or note may break over two lines)."""
    return " ".join(text.split())


def test_i18n_status_table_and_notes_are_japanese(ja_env: dict[str, str]) -> None:
    """`mimamori i18n status`: headings, voice cells (the Easy Japanese fallback of Khmer and
    Mongolian calls), name sources and notes; the sample council's English name is a value."""
    from i18n.status import SAMPLE_ORG

    table = run("i18n", "status", env=ja_env)
    assert table.returncode == 0, table.stderr
    text = _flat(table.stdout)
    assert english_sentences(text, typed=(SAMPLE_ORG.names["en"],)) == []
    assert "見守りの言語" in text and "最大分割数" in text and "組織名: 見本" in text
    rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if "│" in line}
    assert "やさしい日本語" in rows["km"] and "やさしい日本語" in rows["mn"]
    assert "ベトナム語" in rows["vi"] and "Easy Japanese" not in text
    english = _flat(run("i18n", "status", env={**ja_env, "MIMAMORI_LANGUAGE": "en"}).stdout)
    assert "Mimamori languages" in english and "Organization name: a sample" in english
    assert "Easy Japanese" in english
    _user(ja_env, "admin@wajima.example", ORG)
    real = _flat(run("i18n", "status", "--org", ORG, env=ja_env).stdout)
    assert f"組織名: データベースの {ORG}" in real and english_sentences(real) == []


def _demo_output(language: str, tmp_path: Path) -> str:
    """The demo's header, live progress and summary, from made-up numbers and three real
    escalation stories (the whole morning runs in tests/test_demo.py, in English)."""
    import io
    import random
    import uuid
    from collections import Counter
    from types import SimpleNamespace as Row

    from rich.console import Console

    from service import demo

    residents, members = demo.plan_cast(random.Random(7))
    cast = demo.Cast(uuid.uuid4(), demo.STAFF_EMAIL, "pw-0123", residents, members)
    sato, suzuki = uuid.uuid4(), uuid.uuid4()
    names = {sato: "佐藤 和子", suzuki: "鈴木 茂"}

    def story(reason: str, state: str, outcome: str | None, *alerts: tuple[int, str, uuid.UUID]):
        escalation = Row(reason=reason, state=state, outcome=outcome)
        rows = [Row(step_index=i, state=s, member_id=m) for i, s, m in alerts]
        return demo.escalation_story(escalation, rows, False, names)

    stories = []
    for code, (path, who) in (
        (
            "A1",
            story(
                "no_reply", "resolved", "safe", (0, "declined", sato), (1, "acknowledged", suzuki)
            ),
        ),
        (
            "B2",
            story(
                "unreachable",
                "acknowledged",
                None,
                (0, "expired", sato),
                (1, "acknowledged", suzuki),
            ),
        ),
        ("C3", story("needs_help", "exhausted", None, (0, "sent", sato))),
    ):
        stories.append(
            {
                "code": code,
                "resident": "能登 花子",
                "where": "さくら団地（デモ） 1-101",
                "language": "vi",
                "story": path,
                "who": who,
                "state": "resolved",
            }
        )
    summary = demo.Summary(
        states={
            "ok": 150,
            "needs_help": 5,
            "wants_talk": 2,
            "no_reply": 3,
            "unreachable": 1,
            "visit_list": 1,
            "opted_out": 1,
            "superseded": 1,
            "waiting": 2,
        },
        unclear=2,
        keypad=4,
        undelivered_numbers=1,
        by_language={
            "ja": Counter(residents=120, ok=110, needs_help=3),
            "vi": Counter(residents=20, ok=18, no_reply=2),
        },
        stories=stories,
    )
    out = Console(file=io.StringIO(), width=200, record=True)
    demo.print_header(out, cast, tmp_path / "demo.db", True, "http://localhost:8000", language)
    progress = demo.Progress(
        minute=42,
        sent=210,
        delivered=200,
        failed=1,
        replied=150,
        escalated=6,
        resolved=3,
        alerts=9,
        settled=160,
        total=200,
        clock="08:42 JST",
    )
    out.print(demo.render_progress(progress, language))
    demo.print_summary(out, summary, 12.3, 456, language)
    return out.export_text()


def test_the_demo_prints_its_morning_in_japanese(tmp_path: Path) -> None:
    from service import demo

    japanese = _demo_output("ja", tmp_path)
    assert english_sentences(japanese, typed=(demo.STAFF_EMAIL,)) == []
    assert "職員のログイン: demo-staff@example.jp / パスワード pw-0123" in japanese
    assert "模擬の朝 08:42 JST" in japanese and "確認済み 160/200" in japanese
    assert "状態ごとの安否確認" in japanese and "言語ごとの安否確認" in japanese
    assert "応答なし→エスカレーション→辞退→次の担当者→引き受け→解決（無事）" in japanese
    assert "[佐藤 和子 さんが辞退; 鈴木 茂 さんが引き受け]" in japanese
    assert "ベトナム語" in japanese and "デモの安否確認が 12.3 秒で終わりました" in japanese
    english = _demo_output("en", tmp_path)
    assert "Staff login: demo-staff@example.jp / password pw-0123" in english
    assert "silent→escalated→declined→next member→acknowledged→resolved (safe)" in english
    assert "no answer→next member→acknowledged (visit in progress)" in english
    assert "Vietnamese" in english and "completed in 12.3 s" in english


def test_the_demo_refusal_is_japanese(tmp_path: Path, ja_env: dict[str, str]) -> None:
    existing = tmp_path / "mine.db"
    existing.write_bytes(b"precious")
    refused = run("demo", "--no-serve", "--database", str(existing), env=ja_env)
    assert refused.returncode == 1 and existing.read_bytes() == b"precious"
    assert "すでにあります" in refused.stderr
    assert english_sentences(refused.stderr, typed=(str(existing),)) == []


# --- CSV row errors -----------------------------------------------------------------------------


def test_csv_row_errors_are_texts_rendered_in_the_readers_language(session, coordinator) -> None:
    report = csv_io.import_csv(
        session=session,
        organization_id=coordinator.org_id,
        kind="residents",
        data=cp932_file(GOOD_ROWS + BAD_ROWS),
        actor=csv_io.Actor(label="test"),
        dry_run=True,
        language="ja",
    )
    session.rollback()
    reasons = {e.row: e.reason for e in report.errors}
    assert reasons[9].render("ja") == "はい/いいえ（○/×、1/0）で入力してください"
    assert reasons[9].render("en") == "expected yes/no (はい/いいえ, ○/×, 1/0)"
    assert reasons[7].render("ja").startswith("電話番号が正しくありません: ")
    assert "言語 'クリンゴン語' には対応していません" in reasons[8].render("ja")
    rejects = report.reject_csv or ""
    assert "独居: はい/いいえ" in rejects and "expected" not in rejects
    assert report.as_dict("ja")["errors"][2]["reason"].startswith("はい/いいえ")
    assert report.as_dict()["errors"][2]["reason"].startswith("expected yes/no")


def test_a_file_error_is_japanese_for_a_japanese_reader(session, coordinator) -> None:
    with pytest.raises(csv_io.CsvFileError) as caught:
        csv_io.import_csv(
            session=session,
            organization_id=coordinator.org_id,
            kind="residents",
            data="氏名,電話番号\n山田,09012345678\n".encode("cp932"),
            actor=csv_io.Actor(label="test"),
        )
    session.rollback()
    assert caught.value.text.render("ja").startswith("必要な列がありません: ")
    assert str(caught.value).startswith("required columns are missing: ")


def test_the_command_line_reject_file_is_in_the_importers_language(
    tmp_path: Path, ja_env: dict[str, str]
) -> None:
    _user(ja_env, "admin@wajima.example", ORG)
    source = tmp_path / "residents.csv"
    source.write_bytes(cp932_file(GOOD_ROWS + BAD_ROWS))
    applied = run("import", "residents", str(source), "--apply-valid-rows", env=ja_env)
    assert applied.returncode == 0, applied.stderr
    assert "5 件を追加" in applied.stdout and "はい/いいえ" in applied.stdout
    text = (tmp_path / "residents.rejects.csv").read_bytes().decode("cp932")
    assert "はい/いいえ（○/×、1/0）で入力してください" in text
    assert "電話番号が正しくありません" in text and "expected" not in text


# --- API error details ----------------------------------------------------------------------------


def test_api_422_is_japanese_when_the_request_asks_and_english_otherwise(
    client, coordinator
) -> None:
    body = {"name": "能登 花子", "phone": "090-1234-5678", "language": 1}
    plain = client.post("/api/v1/residents", headers=coordinator.headers, json=body)
    japanese = client.post(
        "/api/v1/residents",
        headers={**coordinator.headers, "Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"},
        json=body,
    )
    assert plain.status_code == japanese.status_code == 422
    [en_error] = plain.json()["detail"]
    [ja_error] = japanese.json()["detail"]
    assert en_error["msg"] == "expected a string"
    assert ja_error["msg"] == "文字列を指定してください"
    # The shape and the machine-readable parts are the same in both languages.
    assert {k: v for k, v in en_error.items() if k != "msg"} == {
        k: v for k, v in ja_error.items() if k != "msg"
    }
    missing = client.post(
        "/api/v1/residents", headers={**coordinator.headers, "Accept-Language": "ja"}, json={}
    )
    assert {e["msg"] for e in missing.json()["detail"]} == {"この項目は必須です"}
    bad_time = client.post(
        "/api/v1/schedules",
        headers={**coordinator.headers, "Accept-Language": "ja"},
        json={"name": "x", "time_of_day": "25:00"},
    )
    assert bad_time.status_code == 422
    assert "HH:MM の形で入力してください" in bad_time.json()["detail"][0]["msg"]
    assert bad_time.json()["detail"][0]["type"] == "value_error"


def test_api_domain_errors_follow_accept_language(client, coordinator) -> None:
    client.post("/api/v1/sites", headers=coordinator.headers, json={"name": "A団地"})
    again = {"name": "A団地"}
    english = client.post("/api/v1/sites", headers=coordinator.headers, json=again)
    japanese = client.post(
        "/api/v1/sites", headers={**coordinator.headers, "Accept-Language": "ja"}, json=again
    )
    assert english.status_code == japanese.status_code == 409
    assert english.json()["detail"][0]["msg"] == "a site named 'A団地' already exists"
    assert japanese.json()["detail"][0]["msg"] == "'A団地' という団地はすでにあります"
    assert english.json()["detail"][0]["type"] == japanese.json()["detail"][0]["type"]
    missing = client.get(
        "/api/v1/residents/00000000-0000-0000-0000-000000000000",
        headers={**coordinator.headers, "Accept-Language": "ja"},
    )
    assert missing.status_code == 404 and missing.json() == {"detail": "住民が見つかりません"}


# --- No string literal reaches a reader unrendered -------------------------------------------------

CLI_DIR = REPO / "service" / "cli"
_PRINTERS = {"say", "note", "warn", "fail", "print", "echo", "secho", "prompt"}


def _literal(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip() != ""
    )


# Modules outside service/cli that print to the operator: the demo and the language table.
_PRINTING_MODULES = (REPO / "service" / "demo.py", REPO / "i18n" / "status.py")
# What the table, progress and summary builders take as the words people read.
_WORDS = {"Table", "add_column", "add_row", "assemble"}


def _wordy(node: ast.AST) -> bool:
    """A literal with words in it (f"{count}%" or " / " between values is no sentence)."""
    parts = node.values if isinstance(node, ast.JoinedStr) else [node]
    return any(
        isinstance(part, ast.Constant)
        and isinstance(part.value, str)
        and re.search(r"[A-Za-z]{2}", part.value) is not None
        for part in parts
    )


def _printed_literals(path: Path, *, raises: bool) -> list[str]:
    problems = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _PRINTERS and node.args and _literal(node.args[0]):
                problems.append(f"{path.name}:{node.lineno} {name}() of a literal")
            for keyword in node.keywords:
                if keyword.arg in ("help", "title") and _literal(keyword.value):
                    problems.append(f"{path.name}:{node.lineno} {keyword.arg}= literal")
            if name in _WORDS and any(_literal(arg) and _wordy(arg) for arg in node.args):
                problems.append(f"{path.name}:{node.lineno} {name}() of a literal")
        if raises and isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            if any(_literal(arg) for arg in node.exc.args):
                problems.append(f"{path.name}:{node.lineno} raise with a literal")
    return problems


def test_command_line_modules_print_only_catalog_texts() -> None:
    """print/echo/say/fail and help= never take a string literal in service/cli, nor do the
    demo's and the language table's prints, tables and headings: every line a user reads is
    a catalog text (N_ or _), rendered in their language."""
    problems = []
    for path in sorted(CLI_DIR.glob("*.py")):
        problems += _printed_literals(path, raises=True)
    for path in _PRINTING_MODULES:
        problems += _printed_literals(path, raises=False)
    assert problems == []


def test_the_printed_literal_check_sees_a_demo_line(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'out.print(f"Serving at {url}")\n'
        'table.add_column("state")\n'
        'Table(title="Check-ins by state")\n'
        "out.print(N_('fine').render(language))\n"
        'table.add_row(f"{done:.0f}%", f"{a} / {b}")\n',
        encoding="utf-8",
    )
    assert len(_printed_literals(sample, raises=False)) == 3


_DOMAIN_ERRORS = {
    "Invalid",
    "Conflict",
    "NotFound",
    "DomainError",
    "TextError",
    "CsvFileError",
    "PhoneError",
    "ExportEncodingError",
}


def test_domain_errors_are_raised_with_catalog_texts() -> None:
    """Every domain error the service raises says what is wrong with a catalog text, so the API,
    the command line and the dashboard can each render it in their reader's language."""
    problems = []
    for path in sorted((REPO / "service").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in _DOMAIN_ERRORS and node.exc.args and _literal(node.exc.args[0]):
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert problems == []


def test_help_is_japanese_by_default(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MIMAMORI_LANGUAGE", "LC_ALL")}
    env.update({"LANG": "C.UTF-8", "COLUMNS": "200"})
    result = subprocess.run(
        [MIMAMORI, "schedule", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert "定期的な安否確認の予定" in result.stdout


def test_python_dash_m_runs_the_same_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "round", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "MIMAMORI_LANGUAGE": "ja"},
        timeout=60,
    )
    assert result.returncode == 0 and "安否確認を今すぐ始めます" in result.stdout


# --- Typer's own words: help headings, usage lines and usage errors ---------------------------

# Run in a child process, so the help texts are built in the child's language: every command's
# --help, then the usage errors given as JSON (argv[1]); prints {call: [exit code, output]}.
_CHROME_SCRIPT = """
import json, sys
import typer
from typer.testing import CliRunner
from service.cli import app

def paths(command, prefix):
    yield prefix
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from paths(sub, (*prefix, name))

calls = [[*path, "--help"] for path in paths(typer.main.get_command(app), ())]
calls += json.loads(sys.argv[1])
runner = CliRunner()
print(json.dumps({
    " ".join(call): [result.exit_code, result.output]
    for call in calls
    for result in [runner.invoke(app, call, prog_name="mimamori")]
}))
"""
USAGE_ERRORS = {
    "missing required option": ["user", "create", "--name", "管理 者"],
    "unknown option": ["user", "create", "--email", "a@wajima.example", "--bogus"],
    "option without its value": ["user", "create", "--email"],
    "bad choice of command": ["export", "bogus"],
    "unknown command": ["nosuch"],
    "bad integer": ["serve", "--port", "abc"],
    "extra argument": ["serve", "extra"],
}


def _chrome_run(language: str) -> dict[str, tuple[int, str]]:
    result = subprocess.run(
        [sys.executable, "-c", _CHROME_SCRIPT, json.dumps(list(USAGE_ERRORS.values()))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", "MIMAMORI_LANGUAGE": language},
    )
    assert result.returncode == 0, result.stderr
    return {call: (code, output) for call, (code, output) in json.loads(result.stdout).items()}


def test_every_help_and_usage_error_is_japanese_typers_words_included() -> None:
    runs = _chrome_run("ja")
    helps = {call: found for call, found in runs.items() if call.endswith("--help")}
    assert len(helps) > 30 and "--help" in helps and "org senders add --help" in helps
    failures = {}
    for call, (code, output) in runs.items():
        expected_code = 0 if call in helps else 2
        assert code == expected_code and "Traceback" not in output, (call, output)
        found = english_sentences(output, typed=("a@wajima.example",))
        if found:
            failures[call] = found
    assert failures == {}, "\n".join(f"{call}: {found}" for call, found in failures.items())
    for call in USAGE_ERRORS.values():
        output = runs[" ".join(call)][1]
        assert "エラー" in output, output
    # What the user typed is still named, inside the Japanese sentence.
    assert "'--email'" in runs["user create --name 管理 者"][1]
    assert "--bogus" in runs["user create --email a@wajima.example --bogus"][1]
    assert "'--port'" in runs["serve --port abc"][1]


def test_typers_words_stay_english_in_english() -> None:
    runs = _chrome_run("en")
    help_text = runs["user create --help"][1]
    assert "Usage: mimamori user create" in help_text
    assert "Show this message and exit." in help_text and "Options" in help_text
    expected = {
        "missing required option": "Missing option '--email'.",
        "unknown option": "No such option: --bogus",
        "option without its value": "Option '--email' requires an argument.",
        "bad choice of command": "No such command 'bogus'.",
        "bad integer": "Invalid value for '--port'",
        "extra argument": "Got unexpected extra argument(s) (extra)",
    }
    for name, sentence in expected.items():
        assert sentence in runs[" ".join(USAGE_ERRORS[name])][1], name


class Colour(enum.StrEnum):
    red = "red"
    blue = "blue"


def _tiny_app(cls: type | None) -> typer.Typer:
    """A command with a choice and an integer, built like ours (or with Typer's plain group)."""
    app = typer.Typer(**({"cls": cls} if cls else {}))

    @app.command()
    def paint(
        colour: Annotated[Colour, typer.Option(help="色。")],
        times: Annotated[int, typer.Option(help="回数。")] = 1,
    ) -> None:
        """塗ります。"""

    @app.command()
    def wash() -> None:
        """洗います。"""

    return app


@pytest.mark.parametrize(
    "args",
    [
        ["paint", "--colour", "green"],
        ["paint", "--colour", "red", "--times", "many"],
        ["paint"],
        ["pain"],
        ["paint", "--help"],
    ],
)
def test_a_choice_and_an_integer_are_refused_in_japanese_and_nothing_leaks(
    args: list[str],
) -> None:
    from typer import rich_utils
    from typer.testing import CliRunner

    from service.cli.chrome import TranslatedGroup

    before = {name: getattr(rich_utils, name) for name in dir(rich_utils) if name.isupper()}
    highlighter = rich_utils.highlighter
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    japanese = runner.invoke(
        _tiny_app(TranslatedGroup), args, env={**env, "MIMAMORI_LANGUAGE": "ja"}
    )
    # Nothing of the Japanese stays behind for other Typer or Rich users of the process.
    assert {name: getattr(rich_utils, name) for name in before} == before
    assert rich_utils.highlighter is highlighter
    # English is Typer's own output, word for word.
    english = runner.invoke(
        _tiny_app(TranslatedGroup), args, env={**env, "MIMAMORI_LANGUAGE": "en"}
    )
    plain = runner.invoke(_tiny_app(None), args, env={**env, "MIMAMORI_LANGUAGE": "en"})
    assert english.output == plain.output and english.exit_code == plain.exit_code
    # Japanese says the same thing: same exit code, the same values named, no English words.
    assert japanese.exit_code == plain.exit_code and "使い方:" in japanese.output
    assert english_sentences(japanese.output, typed=("green",)) == []
    for named in re.findall(r"'[^']+'", plain.output.split("\n", 2)[-1]):
        assert named in japanese.output, (named, japanese.output)


# --- The service catalog is checked like the others ------------------------------------------------


def test_the_service_catalog_is_complete_and_current() -> None:
    from i18n.catalogs import SERVICE_DOMAIN, check_catalogs, check_dashboard_catalogs

    assert check_dashboard_catalogs(domain=SERVICE_DOMAIN) == []
    assert [p for p in check_catalogs() if p.catalog.startswith("service")] == []


def test_check_fails_when_a_command_gains_an_untranslated_message(tmp_path: Path) -> None:
    import shutil

    from i18n.catalogs import (
        LOCALES_DIR,
        SERVICE_DOMAIN,
        check_dashboard_catalogs,
        update_dashboard_catalogs,
    )

    locales = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, locales, ignore=shutil.ignore_patterns("*.mo"))
    source = tmp_path / "service"
    shutil.copytree(REPO / "service", source, ignore=shutil.ignore_patterns("__pycache__"))
    users = source / "cli" / "users.py"
    users.write_text(
        users.read_text(encoding="utf-8") + '\nNEW = N_("A brand new line")\n', encoding="utf-8"
    )
    stale = check_dashboard_catalogs(locales, source, SERVICE_DOMAIN)
    assert ("service.pot", "A brand new line") in {(p.catalog, p.msgid) for p in stale}
    update_dashboard_catalogs(locales, source, SERVICE_DOMAIN)
    problems = check_dashboard_catalogs(locales, source, SERVICE_DOMAIN)
    # English is the source language and fills itself; Japanese waits for a translator.
    assert [(p.catalog, p.msgid, p.problem) for p in problems] == [
        ("service:ja", "A brand new line", "translation is empty")
    ]


def test_api_login_and_role_refusals_follow_accept_language(client, viewer) -> None:
    ja = {"Accept-Language": "ja"}
    anonymous = client.get("/api/v1/residents", headers=ja)
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "detail": "ログインしていません。/api/v1/auth/token でログインしてください"
    }
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/residents").json() == {
        "detail": "not authenticated: log in at /api/v1/auth/token"
    }
    refused = client.post("/api/v1/sites", headers={**viewer.headers, **ja}, json={"name": "A"})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("この操作には coordinator の役割が必要です")
    wrong = client.post(
        "/api/v1/auth/token", data={"username": viewer.email, "password": "nope"}, headers=ja
    )
    assert wrong.status_code == 401 and wrong.json() == {
        "detail": "ログイン名またはパスワードが違います"
    }
    unknown = client.get("/api/v1/no-such-thing", headers=ja)
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
