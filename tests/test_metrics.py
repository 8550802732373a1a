"""GET /metrics after a simulated round: the families an operator alerts on, with values
that match the database, computed at scrape time."""

from __future__ import annotations

import uuid
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from service.checkins import flows
from service.config import get_settings
from service.escalations.models import Escalation
from service.metrics import webhook_route
from service.registry.models import MemberKind
from service.telephony.models import OutboxMessage, OutboxStatus
from tests.checkins import conftest as checkins
from tests.checkins.conftest import World

world = checkins.world  # the simulated-world fixture of tests/checkins, shared

FAMILIES = {
    "mimamori_messages",
    "mimamori_replies",
    "mimamori_escalations_open",
    "mimamori_sweep_lag_seconds",
    "mimamori_outbox_depth",
    "mimamori_dispatch_latency_seconds",
    "mimamori_webhook_latency_seconds",
    "mimamori_metrics_database_up",
}


def scrape(world: World) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = world.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def family_names(world: World) -> set[str]:
    text = world.client.get("/metrics").text
    return {family.name for family in text_string_to_metric_families(text)}


def mobile(n: int) -> str:
    return f"+81902100{n:04d}"


def build(world: World) -> dict[str, list[int]]:
    """Ten residents: six fine, two ask for help, one unclear, one whose number fails."""
    world.site("さくら団地")
    world.member("M1", "080-3100-0001")
    world.member("M2", "080-3100-0002")
    world.member("S1", "080-3100-0009", kind=MemberKind.staff_on_duty)
    for n in range(10):
        world.resident(f"R{n}", mobile(n), language=["ja", "vi"][n % 2], site="さくら団地")
        world.assign(f"R{n}", "M1", 1)
        world.assign(f"R{n}", "M2", 2)
    return {"fine": [0, 1, 2, 3, 4, 5], "help": [6, 7], "unclear": [8], "fails": [9]}


def start_round(world: World) -> uuid.UUID:
    return flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        override_quiet_hours=True,
    )


def test_metrics_expose_every_family_with_the_database_up(world):
    names = family_names(world)
    # The text format drops the _total/_bucket suffixes from family names.
    assert names >= FAMILIES, FAMILIES - names
    assert value(scrape(world), "mimamori_metrics_database_up") == 1


def test_metrics_after_a_simulated_round_match_the_database(world):
    who = build(world)
    before = scrape(world)
    start_round(world)

    # Written, not yet dispatched: the outbox depth is the whole round.
    pending = scrape(world)
    assert value(pending, "mimamori_outbox_depth") == 10
    assert value(pending, "mimamori_messages", channel="sms", status="pending") == 10

    world.tick()  # dispatch through the console provider
    sent = scrape(world)
    assert value(sent, "mimamori_outbox_depth") == 0
    assert value(sent, "mimamori_messages", channel="sms", status="sent") == 10
    dispatched = value(sent, "mimamori_dispatch_latency_seconds_count", channel="sms") - value(
        before, "mimamori_dispatch_latency_seconds_count", channel="sms"
    )
    assert dispatched == 10

    # Twilio's delivery receipts, and one number that cannot be reached.
    for record in world.provider.sent:
        failing = record.to == mobile(who["fails"][0])
        params = {"MessageSid": record.sid, "MessageStatus": "delivered", "AccountSid": "AC"}
        if failing:
            params |= {"MessageStatus": "undelivered", "ErrorCode": "30003"}
        path = record.status_callback.removeprefix(get_settings().public_url)
        assert world.post(path, params).status_code == 204
    world.clock.advance(minutes=3)
    for n in who["fine"]:
        world.sms(mobile(n), "元気です" if n % 2 == 0 else "Tôi ổn")
    for n in who["help"]:
        world.sms(mobile(n), "大丈夫じゃない" if n % 2 == 0 else "không ổn")
    world.sms(mobile(who["unclear"][0]), "明日は雨かな")
    world.tick()

    after = scrape(world)
    assert value(after, "mimamori_replies", **{"class": "fine"}) == 6
    assert value(after, "mimamori_replies", **{"class": "help"}) == 2
    assert value(after, "mimamori_replies", **{"class": "unclear"}) == 1
    assert value(after, "mimamori_escalations_open", state="alerting") == 2
    assert value(after, "mimamori_escalations_open", state="acknowledged") == 0
    assert value(after, "mimamori_escalations_open", state="exhausted") == 0
    assert value(after, "mimamori_messages", channel="sms", status="undelivered") >= 1
    # Every (channel, status) pair agrees with the outbox table.
    with world.session() as s:
        table = Counter(
            {
                (str(c), str(st)): n
                for c, st, n in s.execute(
                    select(OutboxMessage.channel, OutboxMessage.status, func.count()).group_by(
                        OutboxMessage.channel, OutboxMessage.status
                    )
                )
            }
        )
    exposed = Counter(
        {
            (dict(labels)["channel"], dict(labels)["status"]): v
            for (name, labels), v in after.items()
            if name == "mimamori_messages"
        }
    )
    assert exposed == table

    # Webhooks were timed by route: 10 delivery receipts and 9 replies.
    def webhooks(samples, route: str) -> float:
        return value(samples, "mimamori_webhook_latency_seconds_count", route=route)

    assert webhooks(after, "/twilio/status") - webhooks(before, "/twilio/status") == 10
    assert webhooks(after, "/twilio/sms") - webhooks(before, "/twilio/sms") == 9

    # A member acknowledges one help case: one alerting, one acknowledged.
    with world.session() as s:
        code = s.execute(select(Escalation.case_code).limit(1)).scalar_one()
    world.sms("+818031000001", f"1 {code}")
    acked = scrape(world)
    assert value(acked, "mimamori_escalations_open", state="alerting") == 1
    assert value(acked, "mimamori_escalations_open", state="acknowledged") == 1


def test_sweep_lag_is_the_age_of_the_oldest_missed_deadline(world):
    build(world)
    start_round(world)
    world.tick()
    assert value(scrape(world), "mimamori_sweep_lag_seconds") == 0
    # The first step waits 60 minutes; nobody sweeps for 70.
    world.clock.advance(minutes=70)
    assert value(scrape(world), "mimamori_sweep_lag_seconds") == 600
    world.tick()
    assert value(scrape(world), "mimamori_sweep_lag_seconds") == 0


def test_gauges_are_read_from_the_database_at_scrape_time(world):
    """Another replica or process wrote the row: this one reports it all the same."""
    assert value(scrape(world), "mimamori_outbox_depth") == 0
    with world.session() as s:
        s.add(
            OutboxMessage(
                organization_id=world.org_id,
                channel="sms",
                purpose="alert",
                to_phone="+818031000001",
                body="x",
                status=OutboxStatus.pending,
                next_try_at=world.clock.now(),
                give_up_at=world.clock.now(),
            )
        )
        s.commit()
    samples = scrape(world)
    assert value(samples, "mimamori_outbox_depth") == 1
    assert value(samples, "mimamori_messages", channel="sms", status="pending") == 1


def test_webhook_latency_has_a_fixed_set_of_routes(world):
    assert webhook_route("/twilio/sms") == "/twilio/sms"
    assert webhook_route("/twilio/voice/gather") == "/twilio/voice/gather"
    assert webhook_route("/twilio/../../etc/passwd") == "other"
    before = value(scrape(world), "mimamori_webhook_latency_seconds_count", route="other")
    world.client.post("/twilio/no-such-hook", data={})
    after = value(scrape(world), "mimamori_webhook_latency_seconds_count", route="other")
    assert after == before + 1
