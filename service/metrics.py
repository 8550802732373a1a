"""Prometheus metrics at ``GET /metrics``.

Two kinds, on purpose:

- **State that lives in the database** (messages by channel and status, replies by class,
  open escalations, sweep lag, outbox depth) is computed *at scrape time* by a custom
  collector. Every API replica then reports the same, correct numbers, whichever one
  Prometheus scrapes, and nothing drifts when a replica restarts.
- **Latencies that only a process can see** (one send to the provider, one webhook
  request) are histograms kept in the process that measured them; Prometheus sums them
  across replicas.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The dispatcher's histogram is defined beside it (the outbound layer imports no metrics).
from service.telephony.dispatch_metrics import DISPATCH_BUCKETS as DISPATCH_BUCKETS
from service.telephony.dispatch_metrics import DISPATCH_LATENCY as DISPATCH_LATENCY
from service.telephony.dispatch_metrics import observe_dispatch as observe_dispatch

log = logging.getLogger(__name__)

# A webhook must answer in milliseconds (DESIGN.md rule 4).
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

WEBHOOK_ROUTES = frozenset(
    {
        "/twilio/sms",
        "/twilio/status",
        "/twilio/voice",
        "/twilio/voice/gather",
        "/twilio/voice/status",
    }
)

WEBHOOK_LATENCY = Histogram(
    "mimamori_webhook_latency_seconds",
    "Time to answer one Twilio webhook, by route.",
    ["route"],
    buckets=WEBHOOK_BUCKETS,
)

ESCALATION_OPEN_STATES = ("alerting", "acknowledged", "exhausted")


def webhook_route(path: str) -> str:
    """A fixed label set: an unknown path under /twilio/ is "other", so a scanner cannot
    create a time series per URL it tries."""
    return path if path in WEBHOOK_ROUTES else "other"


class WebhookLatencyMiddleware:
    """Times every request under /twilio/ (pure ASGI, so the response is not buffered)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/twilio/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            WEBHOOK_LATENCY.labels(route=webhook_route(path)).observe(time.perf_counter() - started)


class DatabaseCollector(Collector):
    """Reads the current state from the database on every scrape."""

    def describe(self) -> Iterable[Metric]:
        # Declared without samples, so registering never touches the database.
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        up = families[-1]
        try:
            self._fill(*families[:-1])
        except Exception:
            log.exception("could not read metrics from the database")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily | CounterMetricFamily]:
        return [
            GaugeMetricFamily(
                "mimamori_messages",
                "Outbound messages and calls in the outbox, by channel and status.",
                labels=["channel", "status"],
            ),
            GaugeMetricFamily(
                "mimamori_replies",
                "Replies from residents, by how the classifier read them.",
                labels=["class"],
            ),
            GaugeMetricFamily(
                "mimamori_escalations_open",
                "Escalations not yet resolved, by state.",
                labels=["state"],
            ),
            GaugeMetricFamily(
                "mimamori_sweep_lag_seconds",
                "Age of the oldest check-in or escalation deadline that has passed and is "
                "still unprocessed, or of the oldest reply not yet acted on (0 when the "
                "sweeps are keeping up).",
            ),
            GaugeMetricFamily(
                "mimamori_outbox_depth",
                "Outbox rows waiting to be sent (status pending).",
            ),
            GaugeMetricFamily(
                "mimamori_outbox_uncertain",
                "Sends whose fate is uncertain (a timeout after sending, a dispatcher that "
                "died in flight) and not yet reconciled with Twilio's record.",
            ),
            CounterMetricFamily(
                "mimamori_outbox_reconciled",
                "Uncertain sends resolved, by outcome: found (Twilio had it; its SID "
                "stored), not_found (sent), resent (Twilio could not be asked for the set "
                "time; a check-in or alert sent again), gave_up (a notice left ambiguous), "
                "callback (Twilio's status callback came first).",
                labels=["outcome"],
            ),
            GaugeMetricFamily(
                "mimamori_metrics_database_up",
                "1 when the database answered this scrape's queries, 0 when it did not.",
            ),
        ]

    @staticmethod
    def _fill(
        messages: GaugeMetricFamily,
        replies: GaugeMetricFamily,
        escalations: GaugeMetricFamily,
        lag: GaugeMetricFamily,
        depth: GaugeMetricFamily,
        uncertain: GaugeMetricFamily,
        reconciled: CounterMetricFamily,
    ) -> None:
        from sqlalchemy import func, select
        from sqlmodel import Session

        from service.checkins.models import CheckIn, CheckInState
        from service.clock import get_clock
        from service.common import aware
        from service.db import get_engine
        from service.escalations.models import Escalation, EscalationState
        from service.telephony.models import InboundMessage, OutboxMessage, OutboxStatus

        now = get_clock().now()
        with Session(get_engine()) as session:
            for channel, status, count in session.execute(
                select(OutboxMessage.channel, OutboxMessage.status, func.count()).group_by(
                    OutboxMessage.channel, OutboxMessage.status
                )
            ):
                messages.add_metric([str(channel), str(status)], count)
            for kind, count in session.execute(
                select(InboundMessage.classification, func.count())
                .where(InboundMessage.resident_id.is_not(None))  # type: ignore[union-attr]
                .group_by(InboundMessage.classification)
            ):
                replies.add_metric([str(kind) if kind else "unclassified"], count)
            open_counts = dict(
                session.execute(
                    select(Escalation.state, func.count())
                    .where(Escalation.state.in_(ESCALATION_OPEN_STATES))  # type: ignore[attr-defined]
                    .group_by(Escalation.state)
                ).all()
            )
            for state in ESCALATION_OPEN_STATES:
                escalations.add_metric([state], open_counts.get(state, 0))
            oldest_checkin = session.execute(
                select(func.min(CheckIn.next_action_at)).where(
                    CheckIn.state == CheckInState.waiting, CheckIn.next_action_at <= now
                )
            ).scalar_one()
            oldest_escalation = session.execute(
                select(func.min(Escalation.next_action_at)).where(
                    Escalation.state.in_(  # type: ignore[attr-defined]
                        [EscalationState.alerting, EscalationState.acknowledged]
                    ),
                    Escalation.next_action_at <= now,
                )
            ).scalar_one()
            oldest_reply = session.execute(
                select(func.min(InboundMessage.received_at)).where(
                    InboundMessage.processed_at.is_(None)  # type: ignore[union-attr]
                )
            ).scalar_one()
            pending = session.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.pending)
            ).scalar_one()
        overdue = [
            aware(v) for v in (oldest_checkin, oldest_escalation, oldest_reply) if v is not None
        ]
        lag.add_metric([], max(0.0, (now - min(overdue)).total_seconds()) if overdue else 0.0)  # type: ignore[type-var,operator]
        depth.add_metric([], pending)
        _fill_reconciliation(uncertain, reconciled)


RECONCILED_OUTCOMES = ("found", "not_found", "resent", "gave_up", "callback")


def _fill_reconciliation(uncertain: GaugeMetricFamily, reconciled: CounterMetricFamily) -> None:
    """From the outbox's ``reconciliation`` column (a partial index holds only rows that
    were ever uncertain). A row still marked uncertain that is no longer "sending" was
    resolved by Twilio's status callback."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from service.db import get_engine
    from service.telephony.models import OutboxMessage, OutboxStatus, Reconciliation

    counts: dict[str, int] = {}
    with Session(get_engine()) as session:
        for value, status, count in session.execute(
            select(OutboxMessage.reconciliation, OutboxMessage.status, func.count())
            .where(OutboxMessage.reconciliation.is_not(None))  # type: ignore[union-attr]
            .group_by(OutboxMessage.reconciliation, OutboxMessage.status)
        ):
            if value == Reconciliation.uncertain and status != OutboxStatus.sending:
                value = "callback"
            counts[value] = counts.get(value, 0) + count
    uncertain.add_metric([], counts.get(Reconciliation.uncertain.value, 0))
    for name in RECONCILED_OUTCOMES:
        reconciled.add_metric([name], counts.get(name, 0))


_COLLECTOR = DatabaseCollector()
REGISTRY.register(_COLLECTOR)


def metrics_response() -> PlainTextResponse:
    return PlainTextResponse(generate_latest(REGISTRY).decode(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> None:
    """``GET /metrics`` and the webhook timing middleware."""
    app.add_middleware(WebhookLatencyMiddleware)
    app.add_api_route(
        "/metrics",
        metrics_response,
        methods=["GET"],
        tags=["operations"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics",
    )
