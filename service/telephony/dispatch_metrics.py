"""The dispatcher's own measurement: how long one send to the provider takes.

A histogram kept in the process that sends (see ``service/metrics.py`` for why). It lives
here, beside the dispatcher, so that the outbound layer does not import ``service.metrics``,
which reads check-ins and escalations; ``metrics.py`` imports it for ``GET /metrics``.
"""

from __future__ import annotations

from prometheus_client import Histogram

# A send to Twilio takes a round trip to its API.
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

DISPATCH_LATENCY = Histogram(
    "mimamori_dispatch_latency_seconds",
    "Time for one send to the telephony provider (an SMS or a call), by channel.",
    ["channel"],
    buckets=DISPATCH_BUCKETS,
)


def observe_dispatch(channel: str, seconds: float) -> None:
    DISPATCH_LATENCY.labels(channel=str(channel)).observe(seconds)
