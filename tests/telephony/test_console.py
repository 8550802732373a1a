"""The console provider: records what would be sent, and keeps personal data out of logs."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import pytest

from service.telephony.console import ConsoleProvider

pytestmark = pytest.mark.anyio

RESIDENT = "+819012345678"


async def test_sms_gets_a_twilio_shaped_sid_and_is_recorded() -> None:
    console = ConsoleProvider()

    result = await console.send_sms(to=RESIDENT, body="元気ですか？ 1=元気", status_callback="cb")

    assert re.fullmatch(r"SM[0-9a-f]{32}", result.sid)
    assert result.status == "queued"
    [record] = console.sent
    assert (record.kind, record.sid, record.to, record.body) == (
        "sms",
        result.sid,
        RESIDENT,
        "元気ですか？ 1=元気",
    )
    assert record.status_callback == "cb"


async def test_call_gets_a_twilio_shaped_sid_and_is_recorded() -> None:
    console = ConsoleProvider()

    result = await console.place_call(to=RESIDENT, twiml_url="twiml", status_callback="cb")

    assert re.fullmatch(r"CA[0-9a-f]{32}", result.sid)
    assert result.status == "queued"
    [record] = console.sent
    assert (record.kind, record.twiml_url, record.body) == ("call", "twiml", None)


async def test_sids_are_unique() -> None:
    console = ConsoleProvider()
    sids = {
        (await console.send_sms(to=RESIDENT, body="x", status_callback="cb")).sid for _ in range(50)
    }
    assert len(sids) == 50


async def test_logs_never_show_the_body_or_the_full_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="service.telephony.console")
    console = ConsoleProvider()

    await console.send_sms(to=RESIDENT, body="I need help with dialysis", status_callback="cb")
    await console.place_call(to=RESIDENT, twiml_url="twiml", status_callback="cb")

    messages = [record.getMessage() for record in caplog.records]
    joined = "\n".join(messages)
    assert "dialysis" not in joined
    assert RESIDENT not in joined
    assert "5678" in joined  # masked, but still tells numbers apart
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert info and all("characters" not in message for message in info)  # no length at INFO
    assert any(
        "25 characters" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG
    )


def test_records_from_many_threads_are_all_kept() -> None:
    """The scheduler's dispatcher and the web process may share one provider."""
    console = ConsoleProvider()

    def send_many() -> None:
        async def go() -> None:
            for _ in range(50):
                await console.send_sms(to=RESIDENT, body="x", status_callback="cb")

        asyncio.run(go())

    threads = [threading.Thread(target=send_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(console.sent) == 400
    console.clear()
    assert console.sent == []


async def test_sent_is_a_snapshot() -> None:
    console = ConsoleProvider()
    snapshot = console.sent
    await console.send_sms(to=RESIDENT, body="x", status_callback="cb")
    assert snapshot == []
    assert len(console.sent) == 1
