"""`mimamori demo` as a newcomer runs it: a fresh process, no configuration, a whole morning.

The 60-second target is a benchmark (tests/bench/bench_demo.py); here the subprocess only
has a generous timeout, and the elapsed time is printed."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from i18n.classifier import ReplyKind, classify
from service.auth.security import verify_password
from service.demo import (
    FINE_WORDS,
    HELP_WORDS,
    HELP_WORDS_JA_2,
    TALK_WORDS,
    UNCLEAR_WORDS,
    plan_cast,
)
from service.registry.phones import PhoneKind, parse_phone
from tests.conftest import PG_URL

MIMAMORI = str(Path(sys.executable).parent / "mimamori")


def run_demo(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """No MIMAMORI_* variable reaches the demo: it must need no configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    env = {k: v for k, v in env.items() if k not in ("LC_ALL", "LC_MESSAGES")}
    # These assertions read English: an English locale, as an operator's shell would have.
    env.update({"COLUMNS": "200", "LANG": "en_US.UTF-8"})
    return subprocess.run(
        [MIMAMORI, "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


@pytest.mark.slow
@pytest.mark.skipif(
    bool(PG_URL), reason="the demo always runs on its own SQLite file; the SQLite pass covers it"
)
def test_demo_runs_a_whole_morning_and_summarises_every_case(tmp_path):
    database = tmp_path / "demo.db"
    started = time.monotonic()
    result = run_demo("--no-serve", "--database", str(database), cwd=tmp_path)
    elapsed = time.monotonic() - started
    print(f"mimamori demo --no-serve took {elapsed:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    # The login is printed first, and it works.
    login = re.search(r"Staff login: (\S+) / password (\S+)", out)
    assert login is not None, out
    assert out.index("Staff login") < out.index("Check-ins by state")

    # The summary: by state, by language, and what each escalation did.
    states = dict(re.findall(r"^\s+(fine|help|unreachable)\s+(\d+)\s*$", out, re.MULTILINE))
    assert int(states["fine"]) >= 150 and int(states["help"]) >= 1
    assert int(states["unreachable"]) == 1
    assert re.search(r"unclear \(asked again, flagged for staff\)\s+[1-9]", out)
    for code in ("ja", "easy_ja", "vi", "id", "fil", "pt_BR", "zh_Hans", "ne"):
        assert re.search(rf"^  {code} \S.*\d\s*$", out, re.MULTILINE), code
    assert "silent→escalated→acknowledged→resolved" in out
    assert "silent→escalated→declined→next member→acknowledged→resolved" in out
    assert "no answer→next member→acknowledged" in out
    assert "help→escalated→acknowledged→resolved" in out
    assert "unreachable→escalated→acknowledged" in out
    assert re.search(r"completed in \d+\.\d s", out)

    # What the summary says is what the database holds.
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as db:
        residents = db.execute(text("SELECT count(*) FROM resident")).scalar_one()
        languages = db.execute(text("SELECT count(DISTINCT language) FROM resident")).scalar_one()
        members = db.execute(text("SELECT count(*) FROM member")).scalar_one()
        statuses = dict(
            db.execute(text("SELECT status, count(*) FROM resident GROUP BY status")).all()
        )
        undelivered = db.execute(
            text(
                "SELECT count(*) FROM outbox WHERE status = 'undelivered' AND last_error_code = 30003"
            )
        ).scalar_one()
        declined = db.execute(
            text("SELECT count(*) FROM alert WHERE state = 'declined'")
        ).scalar_one()
        expired = db.execute(
            text("SELECT count(*) FROM alert WHERE state = 'expired'")
        ).scalar_one()
        resolved = db.execute(
            text("SELECT count(*) FROM escalation WHERE state = 'resolved'")
        ).scalar_one()
        hashed = db.execute(
            text("SELECT hashed_password FROM user WHERE email = :e"), {"e": login.group(1)}
        ).scalar_one()
        inbound = db.execute(text("SELECT count(*) FROM inbound_message")).scalar_one()
    engine.dispose()
    assert residents == 200 and languages >= 8 and members == 20
    assert statuses.get("opted_out") == 1 and statuses.get("away") == 1
    assert undelivered >= 1 and declined >= 1 and expired >= 1 and resolved >= 10
    assert inbound > 150  # the replies really came in through the webhook
    assert verify_password(login.group(2), hashed)


def test_demo_refuses_to_overwrite_a_database(tmp_path):
    existing = tmp_path / "mine.db"
    existing.write_bytes(b"precious")
    result = run_demo("--no-serve", "--database", str(existing), cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert existing.read_bytes() == b"precious"


PHRASES = [
    *((lang, w, ReplyKind.FINE) for lang, ws in FINE_WORDS.items() for w in ws),
    *((lang, w, ReplyKind.HELP) for lang, w in HELP_WORDS.items()),
    ("ja", HELP_WORDS_JA_2, ReplyKind.HELP),
    *((lang, w, ReplyKind.TALK) for lang, w in TALK_WORDS.items()),
    *((lang, w, ReplyKind.UNCLEAR) for lang, w in UNCLEAR_WORDS.items()),
]


@pytest.mark.parametrize(
    ("language", "words", "kind"),
    [pytest.param(*p, id=f"{p[0]}: {p[1]} -> {p[2].value}") for p in PHRASES],
)
def test_demo_replies_are_read_the_way_the_story_needs(language, words, kind):
    """The demo's residents speak through the real classifier: a phrase it reads
    differently would silently change the story the summary tells."""
    assert classify(words, language).kind is kind


def test_demo_cast_is_a_realistic_fictional_council():
    residents, members = plan_cast(random.Random(2024))
    assert len(residents) == 200 and len(members) == 20
    languages = Counter(r.language for r in residents)
    assert len(languages) >= 8
    assert {"ja", "easy_ja", "vi", "id", "fil", "pt_BR", "zh_Hans", "ne"} <= set(languages)
    assert len({r.name for r in residents} | {m.name for m in members}) == 220
    kinds = Counter(parse_phone(r.phone).kind for r in residents if r.phone)
    assert kinds[PhoneKind.landline] >= 3 and kinds[PhoneKind.mobile] >= 190
    assert all(parse_phone(m.phone).kind == PhoneKind.mobile for m in members)
    behaviours = Counter(r.behaviour for r in residents)
    assert behaviours["opted_out"] == 1 and behaviours["away"] == 1
    assert behaviours["undeliverable"] == 1
    assert sum(1 for r in residents if r.flags.get("lives_alone")) >= 20
    assert sum(1 for r in residents if r.flags.get("needs_interpreter")) >= 3
    member_kinds = Counter(m.kind for m in members)
    assert member_kinds["staff_on_duty"] >= 1 and member_kinds["interpreter"] >= 1
    # The same seed replays the same morning.
    again, _ = plan_cast(random.Random(2024))
    assert [(r.name, r.behaviour, r.replies) for r in again] == [
        (r.name, r.behaviour, r.replies) for r in residents
    ]
