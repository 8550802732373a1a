"""Polling JMA's Atom feed: served by respx on the wire, processed into rounds exactly once."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, timedelta

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlmodel import Session

from scheduler.jobs import poll_jma_feed
from service.jma import feed as jma_feed
from service.jma import service as jma
from service.jma.models import JmaFeedEntry
from service.jma.parser import parse_bulletin
from tests.checkins.conftest import World
from tests.checkins.conftest import world as world
from tests.jma.helpers import (
    VTSE41_DRILL,
    VXSE53_2011,
    decisions,
    outbox_count,
    process,
    rounds,
    site,
)

Loader = Callable[[str], bytes]
FEED_URL = "https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml"
DATA = "https://www.data.jma.go.jp/developer/xml/data"
QUAKE_URL = f"{DATA}/20110311145400_0_VXSE53_010000.xml"
DRILL_URL = f"{DATA}/20160901071300_0_VTSE41_010000.xml"
VOLCANO_URL = f"{DATA}/20110311150000_0_VFVO50_010000.xml"


def entry(title: str, url: str, updated: str) -> str:
    return f"""
  <entry>
    <title>{title}</title>
    <id>{url}</id>
    <updated>{updated}</updated>
    <author><name>気象庁</name></author>
    <link type="application/xml" href="{url}"/>
    <content type="text">【お知らせ】</content>
  </entry>"""


def atom(*entries: str) -> bytes:
    """A feed shaped like JMA's eqvol.xml (Atom 1.0, one link per entry to the bulletin)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja">
  <title>高頻度（地震火山）</title>
  <subtitle>JMAXML publishing feed</subtitle>
  <updated>2011-03-11T05:55:00Z</updated>
  <id>{FEED_URL}</id>
  <link href="{FEED_URL}" rel="self"/>
  <rights>Published by Japan Meteorological Agency</rights>{"".join(entries)}
</feed>
""".encode()


QUAKE_ENTRY = entry("震源・震度に関する情報", QUAKE_URL, "2011-03-11T05:54:00Z")
DRILL_ENTRY = entry("津波警報・注意報・予報a", DRILL_URL, "2011-03-11T05:54:30Z")
VOLCANO_ENTRY = entry("噴火警報・予報", VOLCANO_URL, "2011-03-11T05:55:00Z")


def miyagi(world: World) -> None:
    site(world, "宮城北仮設", quake="220", tsunami="300")
    world.resident("M1", "090-2200-0001", site="宮城北仮設")
    world.resident("M2", "090-2200-0002", site="宮城北仮設")


def at_quake_time(world: World, jma_bytes: Loader) -> None:
    report = parse_bulletin(jma_bytes(VXSE53_2011)).report_datetime
    world.clock.set((report + timedelta(minutes=2)).astimezone(UTC))


def poll(world: World) -> jma_feed.PollResult:
    return jma_feed.poll_feed(world.engine, feed_url=FEED_URL, now_fn=world.clock.now)


def entries(world: World) -> dict[str, JmaFeedEntry]:
    with Session(world.engine) as s:
        return {row.url: row for row in s.execute(select(JmaFeedEntry)).scalars()}


def test_feed_polled_twice_gives_one_broadcast(world: World, jma_bytes: Loader) -> None:
    miyagi(world)
    at_quake_time(world, jma_bytes)
    with respx.mock(assert_all_called=True) as wire:
        feed = wire.get(FEED_URL).respond(
            200, content=atom(QUAKE_ENTRY, DRILL_ENTRY, VOLCANO_ENTRY)
        )
        quake = wire.get(QUAKE_URL).respond(200, content=jma_bytes(VXSE53_2011))
        drill = wire.get(DRILL_URL).respond(200, content=jma_bytes(VTSE41_DRILL))
        first = poll(world)
        world.clock.advance(minutes=1)
        second = poll(world)
    assert first.feed_ok and first.new_entries == 2 and first.processed == 2
    assert second.feed_ok and second.new_entries == 0 and second.processed == 0
    assert feed.call_count == 2
    assert quake.call_count == 1 and drill.call_count == 1  # the volcano report: never fetched
    [round_] = rounds(world)
    assert round_.cause == "震度7 宮城県北部 2011-03-11 14:46"
    # The drill names 茨城県 (tsunami area 300) too: a dry run, nobody contacted.
    assert sorted((d.verdict, d.dry_run) for d in decisions(world)) == [
        ("broadcast", False),
        ("broadcast", True),
    ]
    world.tick()
    assert outbox_count(world) == 2  # M1 and M2, once each; the drill sent nothing
    assert all(row.processed_at is not None for row in entries(world).values())


def test_a_bulletin_pushed_and_then_polled_counts_once(world: World, jma_bytes: Loader) -> None:
    miyagi(world)
    at_quake_time(world, jma_bytes)
    process(world, parse_bulletin(jma_bytes(VXSE53_2011)))
    with respx.mock() as wire:
        wire.get(FEED_URL).respond(200, content=atom(QUAKE_ENTRY))
        wire.get(QUAKE_URL).respond(200, content=jma_bytes(VXSE53_2011))
        result = poll(world)
    assert result.processed == 1 and result.results[0].duplicate
    assert len(rounds(world)) == 1
    assert entries(world)[QUAKE_URL].bulletin_id == result.results[0].bulletin_id


def test_an_unreachable_feed_is_logged_and_does_not_raise(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with respx.mock() as wire:
        wire.get(FEED_URL).mock(side_effect=httpx.ConnectTimeout("timed out"))
        with caplog.at_level(logging.WARNING, logger="service.jma.feed"):
            result = poll(world)
        wire.get(FEED_URL).respond(503)
        with caplog.at_level(logging.WARNING, logger="service.jma.feed"):
            again = poll(world)
    assert not result.feed_ok and not again.feed_ok
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "ConnectTimeout" in messages and "HTTP 503" in messages


def test_a_broken_feed_is_logged_and_does_not_raise(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with respx.mock() as wire:
        wire.get(FEED_URL).respond(200, content=b"<feed><entry>")
        with caplog.at_level(logging.WARNING, logger="service.jma.feed"):
            result = poll(world)
    assert not result.feed_ok
    assert "not well-formed" in caplog.text


def test_entries_too_old_for_any_policy_are_not_fetched(world: World, jma_bytes: Loader) -> None:
    miyagi(world)
    at_quake_time(world, jma_bytes)
    world.clock.advance(hours=26)
    with respx.mock() as wire:  # the bulletin URL is not routed: fetching it would fail
        wire.get(FEED_URL).respond(200, content=atom(QUAKE_ENTRY))
        result = poll(world)
    assert result.new_entries == 1 and result.processed == 0 and result.failed == 0
    assert entries(world)[QUAKE_URL].processed_at is not None
    assert rounds(world) == []


def test_a_failed_bulletin_fetch_is_retried_on_the_next_poll(
    world: World, jma_bytes: Loader
) -> None:
    miyagi(world)
    at_quake_time(world, jma_bytes)
    with respx.mock() as wire:
        wire.get(FEED_URL).respond(200, content=atom(QUAKE_ENTRY))
        wire.get(QUAKE_URL).mock(
            side_effect=[
                httpx.ConnectError("connection refused"),
                httpx.Response(200, content=jma_bytes(VXSE53_2011)),
            ]
        )
        first = poll(world)
        assert first.failed == 1 and rounds(world) == []
        row = entries(world)[QUAKE_URL]
        assert row.attempts == 1 and "ConnectError" in (row.last_error or "")
        second = poll(world)
    assert second.processed == 1
    assert len(rounds(world)) == 1


def test_a_malformed_bulletin_is_given_up_after_a_few_attempts(
    world: World, jma_bytes: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    at_quake_time(world, jma_bytes)
    with respx.mock() as wire:
        wire.get(FEED_URL).respond(200, content=atom(QUAKE_ENTRY))
        bulletin = wire.get(QUAKE_URL).respond(200, content=b"<Report><Control>")
        with caplog.at_level(logging.WARNING, logger="service.jma.feed"):
            for _ in range(jma_feed.MAX_ATTEMPTS + 2):
                poll(world)
    assert bulletin.call_count == jma_feed.MAX_ATTEMPTS
    row = entries(world)[QUAKE_URL]
    assert row.gave_up_at is not None and row.processed_at is None
    assert "not well-formed" in (row.last_error or "")
    assert "given up" in caplog.text


def test_a_link_to_another_host_is_not_fetched(world: World, jma_bytes: Loader) -> None:
    at_quake_time(world, jma_bytes)
    elsewhere = "http://169.254.169.254/latest/meta-data/VXSE53.xml"
    with respx.mock() as wire:  # any request not routed here fails the poll loudly
        wire.get(FEED_URL).respond(
            200, content=atom(entry("震源・震度に関する情報", elsewhere, "2011-03-11T05:54:00Z"))
        )
        result = poll(world)
    assert result.new_entries == 1 and result.processed == 0 and result.failed == 0
    row = entries(world)[elsewhere]
    assert row.gave_up_at is not None and "another host" in (row.last_error or "")


def test_the_poll_job_does_nothing_unless_enabled(world: World, jma_bytes: Loader) -> None:
    miyagi(world)
    at_quake_time(world, jma_bytes)
    with respx.mock() as wire:
        feed = wire.get(FEED_URL).respond(200, content=atom(QUAKE_ENTRY))
        wire.get(QUAKE_URL).respond(200, content=jma_bytes(VXSE53_2011))
        assert world.ctx.settings.jma_poll_enabled is False
        poll_jma_feed(world.ctx)
        assert feed.call_count == 0
        enabled = dataclasses.replace(
            world.ctx,
            settings=world.ctx.settings.model_copy(
                update={"jma_poll_enabled": True, "jma_feed_url": FEED_URL}
            ),
        )
        poll_jma_feed(enabled)
        assert feed.call_count == 1
    assert len(rounds(world)) == 1


def test_the_poll_job_survives_an_unexpected_error(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(jma_feed, "poll_feed", broken)
    enabled = dataclasses.replace(
        world.ctx, settings=world.ctx.settings.model_copy(update={"jma_poll_enabled": True})
    )
    poll_jma_feed(enabled)  # logs, never raises into the scheduler
    assert "JMA feed poll failed" in caplog.text
    assert jma.fire_due_triggers(world.engine, world.clock.now) == []
