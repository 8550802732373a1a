"""Logs as production writes them: JSON lines with no full phone number and no message body,
across a simulated round with replies, a delivery failure and escalations."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid

import phonenumbers
import pytest
from sqlalchemy import select

from service.checkins import flows
from service.config import get_settings
from service.escalations.models import Escalation
from service.logging_setup import CHATTY_LOGGERS, MaskingFilter, configure_logging
from service.privacy import mask_phone, mask_phones_in_text
from service.registry.models import Member, MemberKind, Resident
from service.telephony.models import InboundMessage, OutboxMessage
from tests.checkins import conftest as checkins
from tests.checkins.conftest import World

world = checkins.world  # the simulated-world fixture of tests/checkins, shared


@pytest.fixture
def production_log(monkeypatch: pytest.MonkeyPatch):
    """configure_logging exactly as `mimamori serve` calls it, writing into a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_levels = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("INFO", json_logs=True)
    try:
        yield buffer
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name, old in saved_levels.items():
            logging.getLogger(name).setLevel(old)


def number_forms(e164: str) -> set[str]:
    """Every way a full number could be written into a log line."""
    parsed = phonenumbers.parse(e164)
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    digits = "".join(ch for ch in national if ch.isdigit())
    return {e164, e164.lstrip("+"), national, international, digits}


def mobile(n: int) -> str:
    return f"+81902200{n:04d}"


def run_round(world: World) -> None:
    """Fine, help, unclear and silent residents, a landline, an undeliverable number, and
    members who acknowledge, decline and record outcomes."""
    world.site("うみかぜ団地")
    world.member("M1", "080-3200-0001")
    world.member("M2", "080-3200-0002", ["vi", "ja"])
    world.member("S1", "080-3200-0009", kind=MemberKind.staff_on_duty)
    languages = ["ja", "vi", "id", "fil"]
    for n in range(12):
        world.resident(f"R{n}", mobile(n), language=languages[n % 4], site="うみかぜ団地")
        world.assign(f"R{n}", "M1", 1)
        world.assign(f"R{n}", "M2", 2)
    world.resident("L1", "(0768) 22-4321", site="うみかぜ団地")
    world.assign("L1", "M1", 1)
    flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        override_quiet_hours=True,
    )
    world.tick()
    public = get_settings().public_url
    for record in world.provider.sent:
        if record.kind != "sms":
            continue
        params = {"MessageSid": record.sid, "AccountSid": "AC", "MessageStatus": "delivered"}
        if record.to == mobile(11):
            params |= {"MessageStatus": "undelivered", "ErrorCode": "30003"}
        world.post(record.status_callback.removeprefix(public), params)
    world.clock.advance(minutes=5)
    for n, text in enumerate(
        [
            "大丈夫です",
            "Tôi ổn",
            "saya baik",
            "okay lang ako",
            "元気です",
            "ổn ạ, cảm ơn",
            "大丈夫じゃない",
            "không ổn",
            "明日は雨かな",
        ]
    ):
        world.sms(mobile(n), text)
    world.sms("+819099998888", "間違いメールです 090-9999-8888")  # unknown sender
    world.tick()
    answer_cases(world, decline_first=True)
    world.tick(60)
    world.tick(60)
    for record in world.provider.sent:
        if record.kind == "call":
            world.post(
                record.status_callback.removeprefix(public),
                {"CallSid": record.sid, "AccountSid": "AC", "CallStatus": "no-answer"},
            )
    world.tick(30)
    world.tick(1)
    answer_cases(world, decline_first=False)
    world.tick(30)
    with world.session() as s:
        states = list(s.execute(select(Escalation.state)).scalars())
    assert states.count("resolved") >= 4, states


def answer_cases(world: World, *, decline_first: bool) -> None:
    """The first member alerted on each open case answers by SMS: acknowledges (after one
    decline, if asked) and records the outcome of the visit."""
    declined = not decline_first
    while True:
        with world.session() as s:
            open_case = s.execute(
                select(Escalation).where(Escalation.state == "alerting").limit(1)
            ).scalar_one_or_none()
            if open_case is None:
                return
            member = s.get(Member, uuid.UUID(open_case.chain[open_case.step_index][0]["member_id"]))
            code, phone = open_case.case_code, member.phone
        if not declined:
            world.sms(phone, f"2 {code}")
            declined = True
            continue
        world.sms(phone, f"1 {code}")
        world.sms(phone, f"{code} 1")


def test_no_log_line_at_info_or_above_holds_a_phone_number_or_a_message_body(world, production_log):
    run_round(world)
    lines = [line for line in production_log.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("would send SMS" in r["msg"] for r in records), "the round logged nothing"
    assert any(r.get("event") == "webhook.sms" for r in records)

    with world.session() as s:
        phones = {p for p in s.execute(select(Resident.phone)).scalars() if p}
        phones |= set(s.execute(select(Member.phone)).scalars())
        bodies = set(s.execute(select(OutboxMessage.body)).scalars())
        bodies |= set(s.execute(select(InboundMessage.body)).scalars())
        inbound_from = set(s.execute(select(InboundMessage.from_phone)).scalars())
    assert len(phones) == 16 and "+81768224321" in phones
    forms = set().union(*(number_forms(p) for p in phones | inbound_from))
    # Short texts such as "1" or "2 A7" could occur in any line by chance; every longer
    # message, to or from anyone, must not appear.
    texts = {b for b in bodies if b and len(b) >= 5}
    assert len(texts) > 20
    for record in records:
        if logging.getLevelName(record["level"]) < logging.INFO:
            continue
        line = json.dumps(record, ensure_ascii=False)
        for form in forms:
            assert form not in line, (form, line)
        for text in texts:
            assert text not in line, (text, line)


def test_masking_covers_messages_extras_and_tracebacks(production_log):
    log = logging.getLogger("mimamori.test")
    log.info("calling %s", "+819022000001", extra={"to": "090-2200-0002", "event": "x"})
    try:
        raise ValueError("bad number 0768-22-4321")
    except ValueError:
        log.exception("failed for (0768) 22-4321")
    text = production_log.getvalue()
    for full in ("819022000001", "090-2200-0002", "0768-22-4321", "(0768) 22-4321"):
        assert full not in text
    assert "0001" in text and "0002" in text and "4321" in text  # the last four stay
    first = json.loads(text.splitlines()[0])
    assert first["to"] == mask_phone("090-2200-0002")


def test_masking_filter_also_protects_the_plain_text_format():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "to %s", ("+819022000001",), None)
    try:
        raise RuntimeError("+819022000001")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    MaskingFilter().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert "819022000001" not in text and "0001" in text


@pytest.mark.parametrize(
    "text",
    [
        "scheduled at 2026-12-01 10:00:00 UTC",
        "attempt 550e8400-e29b-41d4-a716-446655440000 sent",
        "sid SM00000000000000000000000000000001",
        "12 residents, 345 messages",
    ],
)
def test_masking_leaves_dates_ids_and_counts_readable(text):
    assert mask_phones_in_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "+819022000001",
        "090-2200-0001",
        "(0768) 22-4321",
        "０９０－２２００－０００１",
        "+81 90 2200 0001",
    ],
)
def test_masking_hides_every_way_of_writing_a_number(text):
    masked = mask_phones_in_text(f"call {text} now")
    digits = "".join(ch for ch in masked if ch.isdigit())
    assert len(digits) == 4, masked
