"""The few fixed recurring jobs. Each is a small module-level function with a fixed id; all
per-resident timing lives in database columns that these jobs read."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from service import bootstrap
from service.checkins import flows
from service.clock import Clock
from service.config import Settings
from service.jma import feed as jma_feed
from service.jma import service as jma
from service.ops.models import Heartbeat
from service.telephony import dispatch, reconcile
from service.telephony.messaging import close_channels_for
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
    # The dispatcher that runs on ``loop`` for the scheduler's lifetime, and its stop signal.
    dispatcher: Future[None] | None = None
    _dispatcher_stop: asyncio.Event | None = None
    # Built from the settings on first use (None when translation is off); tests pass one.
    translator: Translator | None = None
    _translator_built: bool = False

    def __post_init__(self) -> None:
        # The scheduler is put together here: the outbox gets its hooks into check-ins.
        bootstrap.wire()

    def get_translator(self) -> Translator | None:
        if self.translator is None and not self._translator_built:
            self._translator_built = True
            try:
                self.translator = make_translator(self.settings)
            except ValueError:
                log.exception("the translation provider could not be set up; translating nothing")
        return self.translator

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self.loop.run_forever, daemon=True, name="dispatch-loop"
            )
            self._thread.start()
        return self.loop

    def run_async(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """The provider's HTTP client lives on one event loop, for the process's lifetime."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop()).result()

    @property
    def dispatching(self) -> bool:
        return self.dispatcher is not None and not self.dispatcher.done()

    def start_dispatcher(self) -> None:
        """Start the long-running dispatcher on the loop (again, if the last one died)."""
        if self.dispatching:
            return
        if self.dispatcher is not None and (error := self.dispatcher.exception()) is not None:
            log.error("the dispatcher stopped: %r; starting it again", error)
        loop = self._loop()

        async def run() -> None:
            self._dispatcher_stop = asyncio.Event()
            runner = dispatch.Dispatcher(
                engine=self.engine,
                provider=self.provider,
                settings=self.settings,
                now_fn=self.clock.now,
                concurrency=self.settings.dispatch_concurrency,
            )
            await runner.run(self._dispatcher_stop)

        self.dispatcher = asyncio.run_coroutine_threadsafe(run(), loop)

    def stop_dispatcher(self, timeout: float = 60.0) -> None:
        """Stop claiming, wait for the requests in flight and record their answers."""
        if self.loop is None or self.dispatcher is None:
            return
        stop = self._dispatcher_stop
        if stop is not None:
            self.loop.call_soon_threadsafe(stop.set)
        try:
            self.dispatcher.result(timeout=timeout)
        except Exception:
            log.exception("the dispatcher did not stop cleanly")
        self.dispatcher = None

    def close(self) -> None:
        self.stop_dispatcher()
        if self.loop is not None:
            try:
                self.run_async(self.provider.aclose())
                # The messaging apps' clients (LINE's connection pool) live beside it.
                self.run_async(close_channels_for(self.provider))
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
    """Send what is due now and reconcile what is uncertain, then return: one tick of a
    simulated clock (tests, the demo). The scheduler runs ``keep_dispatching`` instead."""

    async def drain() -> None:
        settings, now_fn = ctx.settings, ctx.clock.now
        await dispatch.dispatch_until_empty(
            engine=ctx.engine, provider=ctx.provider, settings=settings, now_fn=now_fn
        )
        outcomes = await reconcile.reconcile_pass(
            engine=ctx.engine, provider=ctx.provider, settings=settings, now=now_fn()
        )
        if any(outcome != "uncertain" for outcome in outcomes):
            await dispatch.dispatch_until_empty(
                engine=ctx.engine, provider=ctx.provider, settings=settings, now_fn=now_fn
            )

    ctx.run_async(drain())


def keep_dispatching(ctx: JobContext) -> None:
    """The dispatcher runs continuously on the context's loop (it claims rows just before
    they leave); this job only starts it, and starts it again if it ever stopped."""
    ctx.start_dispatcher()


def watchdog(ctx: JobContext) -> None:
    now = ctx.clock.now()
    with Session(ctx.engine) as session:
        beat = session.get(Heartbeat, "scheduler")
        if beat is None:
            beat = Heartbeat(name="scheduler", holder=ctx.holder, at=now)
        beat.holder, beat.at = ctx.holder, now
        session.add(beat)
        session.commit()
    # Rows whose dispatcher died become uncertain; the running dispatcher reconciles them
    # (without one, as in a simulated tick, dispatch_outbox does).
    reconcile.release_expired_leases(ctx.engine, now=now)
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
    ("dispatch_outbox", keep_dispatching, 1),
    ("watchdog", watchdog, 10),
    ("poll_jma_feed", poll_jma_feed, 60),
    ("fire_due_jma_triggers", fire_due_jma_triggers, 5),
    # Replies shown in Japanese within about ten seconds; an idle run is a few indexed queries.
    ("translate_replies", translate_replies, 10),
)
