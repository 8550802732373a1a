"""The few fixed recurring jobs. Each is a small module-level function with a fixed id; all
per-resident timing lives in database columns that these jobs read."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.checkins import flows
from service.clock import Clock
from service.config import Settings
from service.jma import feed as jma_feed
from service.jma import service as jma
from service.ops.models import Heartbeat
from service.telephony import outbox
from service.telephony.provider import TelephonyProvider
from service.translation import flows as translation_flows
from service.translation.provider import Translator, make_translator

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    engine: Engine
    clock: Clock
    settings: Settings
    provider: TelephonyProvider
    # Host and process id: two schedulers on one machine must be told apart in the heartbeat.
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    # Built from the settings on first use (None when translation is off); tests pass one.
    translator: Translator | None = None
    _translator_built: bool = False

    def get_translator(self) -> Translator | None:
        if self.translator is None and not self._translator_built:
            self.translator = make_translator(self.settings)
            self._translator_built = True
        return self.translator

    def run_async(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """The provider's HTTP client lives on one event loop, for the process's lifetime."""
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self.loop.run_forever, daemon=True, name="dispatch-loop"
            )
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        if self.loop is not None:
            try:
                self.run_async(self.provider.aclose())
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.translator is not None:
            self.translator.close()


def process_replies(ctx: JobContext) -> None:
    flows.process_replies(ctx.engine, ctx.clock.now)


def start_due_rounds(ctx: JobContext) -> None:
    # A reply that arrived before a new round must be acted on before that round starts.
    flows.process_replies(ctx.engine, ctx.clock.now)
    flows.start_due_rounds(ctx.engine, ctx.clock.now)


def sweep_due_deadlines(ctx: JobContext) -> None:
    # Replies first: a "1" that arrived before a deadline is not a silence.
    flows.process_replies(ctx.engine, ctx.clock.now)
    flows.continue_fan_outs(ctx.engine, ctx.clock.now)
    flows.sweep_checkins(ctx.engine, ctx.clock.now)
    flows.sweep_escalations(ctx.engine, ctx.clock.now)


def dispatch_outbox(ctx: JobContext) -> None:
    ctx.run_async(
        outbox.dispatch_until_empty(
            engine=ctx.engine, provider=ctx.provider, settings=ctx.settings, now_fn=ctx.clock.now
        )
    )


def watchdog(ctx: JobContext) -> None:
    now = ctx.clock.now()
    with Session(ctx.engine) as session:
        beat = session.get(Heartbeat, "scheduler")
        if beat is None:
            beat = Heartbeat(name="scheduler", holder=ctx.holder, at=now)
        beat.holder, beat.at = ctx.holder, now
        session.add(beat)
        session.commit()
    released = outbox.release_stuck(ctx.engine, now=now)
    if released:
        log.warning("released %s outbox rows left sending by a stopped dispatcher", released)
    overdue = flows.overdue_counts(ctx.engine, now)
    if overdue["checkins"] or overdue["escalations"] or overdue["replies"]:
        log.warning("overdue work: %s", overdue, extra={"event": "watchdog.overdue"})


def poll_jma_feed(ctx: JobContext) -> None:
    """Off unless MIMAMORI_JMA_POLL_ENABLED. A bad feed or bulletin is logged and retried
    on the next run; it never stops the other jobs."""
    if not ctx.settings.jma_poll_enabled:
        return
    try:
        jma_feed.poll_feed(ctx.engine, feed_url=ctx.settings.jma_feed_url, now_fn=ctx.clock.now)
    except Exception:
        log.exception("JMA feed poll failed; the next run tries again")


def fire_due_jma_triggers(ctx: JobContext) -> None:
    """Start the checks whose hold-off after an earthquake or tsunami report is over."""
    jma.fire_due_triggers(ctx.engine, ctx.clock.now)


def translate_replies(ctx: JobContext) -> None:
    """Residents' free-text replies into Japanese for staff (nothing sent when the provider
    is "none"). A failing translator is logged and retried; it never stops the other jobs."""
    try:
        translation_flows.translate_pending(ctx.engine, ctx.clock.now, ctx.get_translator())
    except Exception:
        log.exception("translating replies failed; the next run tries again")


def run_all_once(ctx: JobContext) -> None:
    """Every job once, in order: what a simulated clock tick does in tests and the demo."""
    process_replies(ctx)
    start_due_rounds(ctx)
    fire_due_jma_triggers(ctx)
    sweep_due_deadlines(ctx)
    dispatch_outbox(ctx)
    translate_replies(ctx)
    watchdog(ctx)


# (id, function, seconds between runs). APScheduler holds only these. Residents' replies are
# acted on four times a second (the SMS webhook answers them at once and stores them): in a
# burst, a quarter second's replies are a short run of work, where a second's were a long
# one that took the CPU from the webhooks beside it (tests/bench/bench_telephony.py); an idle
# run is one indexed query. The deadline sweep
# runs every second too: a step is taken within 5 s of its deadline even when thousands fall
# due at once (tests/bench/bench_rounds.py; at 2 s, SQLite was at the limit), and an idle run is
# a few indexed queries. A run that takes longer is followed by the next, never overlapped.
JOBS = (
    ("process_replies", process_replies, 0.25),
    ("start_due_rounds", start_due_rounds, 15),
    ("sweep_due_deadlines", sweep_due_deadlines, 1),
    ("dispatch_outbox", dispatch_outbox, 1),
    ("watchdog", watchdog, 10),
    ("poll_jma_feed", poll_jma_feed, 60),
    ("fire_due_jma_triggers", fire_due_jma_triggers, 5),
    # Replies shown in Japanese within about ten seconds; an idle run is a few indexed queries.
    ("translate_replies", translate_replies, 10),
)
