"""Outbound messages and calls go from their organization's own sender (issue 17, item 5):
with two councils on one installation, each one's check-ins leave from its own number (or
Messaging Service), so that a resident's reply comes back to the number that belongs to
their organization; a council without a sender of its own uses the installation's.

Real components: the dispatcher, the Twilio provider over both HTTP clients, and a
Twilio-compatible server on loopback (``tests/support/fake_twilio``) that records what
it was sent; replies come back through the signed SMS webhook.
"""

# The `world` fixture comes from tests/checkins/conftest.py; a test parameter of that
# name shadows the import.
# ruff: noqa: F811

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from scheduler.jobs import process_replies
from service.audit.service import Actor
from service.auth.models import Role
from service.checkins import flows
from service.checkins.models import CheckIn, CheckInState, StaffTask, TaskKind
from service.config import Settings
from service.registry import service as registry
from service.registry.models import ResidentCreate
from service.telephony.channel import Sender
from service.telephony.dispatch import dispatch_once
from service.telephony.models import InboundMessage, OutboxChannel, OutboxPurpose
from service.telephony.outbox import enqueue
from service.telephony.senders import SenderBook, choose_sender
from service.telephony.twilio_provider import TwilioProvider
from tests.checkins.conftest import ONE_MESSAGE, World, world  # noqa: F401
from tests.conftest import Staff, make_staff
from tests.support.fake_twilio import FakeConfig, FakeTwilioProcess
from tests.telephony.conftest import PUBLIC_URL

pytestmark = pytest.mark.anyio

ORG_A = "輪島市社会福祉協議会"  # the world's own organization
ORG_B = "珠洲市社会福祉協議会"
ORG_C = "能登町社会福祉協議会"  # no sender of its own
NUMBER_A = "+815011112222"
NUMBER_B = "+815033334444"
SERVICE_B = "MG" + "b" * 32
DEFAULT_NUMBER = "+815000000000"
STRANGER = "+819087654321"
RESIDENTS = {"A": "+819011110001", "B": "+819011110002", "C": "+819011110003"}


@pytest.fixture(scope="module")
def fake_twilio() -> Iterator[FakeTwilioProcess]:
    with FakeTwilioProcess(FakeConfig(latency_ms=5, deliver_after_ms=100_000)) as twilio:
        yield twilio


@pytest.fixture
def twilio(fake_twilio: FakeTwilioProcess) -> FakeTwilioProcess:
    fake_twilio.reset()
    return fake_twilio


def settings_for(twilio: FakeTwilioProcess, http: str) -> Settings:
    return Settings(
        _env_file=None,
        public_url=PUBLIC_URL,
        twilio_account_sid=twilio.config.account_sid,
        twilio_auth_token=twilio.config.auth_token,
        twilio_from_number=DEFAULT_NUMBER,
        twilio_api_url=twilio.url,
        twilio_http_client=http,
        sms_per_second=1000.0,
        calls_per_second=1000.0,
    )


class Councils:
    """A (the world's) with its number, B with its own, C with none: one resident each."""

    def __init__(self, world: World) -> None:
        self.world = world
        staff = {
            key: make_staff(world.client, world.engine, org=name, role=Role.admin)
            for key, name in (("A", ORG_A), ("B", ORG_B), ("C", ORG_C))
        }
        assert staff["A"].org_id == world.org_id
        self.staff: dict[str, Staff] = staff
        self.orgs = {key: member.org_id for key, member in staff.items()}
        self.set_senders("A", {"sender_numbers": [NUMBER_A]})
        self.set_senders("B", {"sender_numbers": [NUMBER_B]})
        self.residents: dict[str, uuid.UUID] = {}
        with world.session() as s:
            for key, phone in RESIDENTS.items():
                resident = registry.create_resident(
                    session=s,
                    organization_id=self.orgs[key],
                    data=ResidentCreate(
                        external_id=f"R-{key}",
                        name=f"住民 {key}",
                        phone=phone,
                        language="ja",
                        consent_at=world.clock.now(),
                    ),
                    actor=Actor(label="test"),
                )
                self.residents[key] = resident.id
            s.commit()

    def set_senders(self, key: str, body: dict[str, Any]) -> None:
        response = self.world.client.patch(
            "/api/v1/organization", json=body, headers=self.staff[key].headers
        )
        assert response.status_code == 200, response.text

    def start_rounds(self) -> None:
        for org in self.orgs.values():
            flows.start_broadcast(
                self.world.engine,
                organization_id=org,
                started_by="test",
                now_fn=self.world.clock.now,
                plan=ONE_MESSAGE,
            )

    async def dispatch(self, twilio: FakeTwilioProcess, http: str) -> None:
        settings = settings_for(twilio, http)
        provider = TwilioProvider.from_settings(settings)
        try:
            await dispatch_once(
                engine=self.world.engine,
                provider=provider,
                settings=settings,
                now=self.world.clock.now(),
            )
        finally:
            await provider.aclose()


@pytest.fixture
def councils(world: World) -> Councils:
    return Councils(world)


def _sent(twilio: FakeTwilioProcess, kind: str = "messages") -> dict[str, dict[str, Any]]:
    records = twilio.messages() if kind == "messages" else twilio.calls()
    return {record["to"]: record for record in records}


# --- The rule, as a table -----------------------------------------------------------------------

_DEFAULT = Sender(from_number=DEFAULT_NUMBER, messaging_service_sid="MG" + "0" * 32)


@pytest.mark.parametrize(
    ("channel", "numbers", "service", "expected"),
    [
        ("sms", [], None, _DEFAULT),  # none of its own: the installation's
        ("sms", [NUMBER_B], None, Sender(from_number=NUMBER_B)),
        ("sms", [NUMBER_B], SERVICE_B, Sender(messaging_service_sid=SERVICE_B)),
        ("call", [NUMBER_B], SERVICE_B, Sender(from_number=NUMBER_B)),
        ("call", [], SERVICE_B, Sender(from_number=DEFAULT_NUMBER)),  # a service cannot call
    ],
)
async def test_choose_sender(channel, numbers, service, expected):
    chosen = choose_sender(
        channel, numbers=numbers, messaging_service_sid=service, default=_DEFAULT
    )
    assert chosen == expected


async def test_the_provider_puts_the_organizations_sender_on_the_wire():
    twilio = TwilioProvider(account_sid="AC" + "0" * 32, auth_token="x", from_number=DEFAULT_NUMBER)
    try:
        form = dict(twilio.sms_form(to="+8190", body="b", status_callback="cb"))
        assert form["From"] == DEFAULT_NUMBER and "MessagingServiceSid" not in form
        own = dict(
            twilio.sms_form(to="+8190", body="b", status_callback="cb", sender=Sender(NUMBER_B))
        )
        assert own["From"] == NUMBER_B
        service = Sender(messaging_service_sid=SERVICE_B)
        own = dict(twilio.sms_form(to="+8190", body="b", status_callback="cb", sender=service))
        assert own["MessagingServiceSid"] == SERVICE_B and "From" not in own
        call = dict(
            twilio.call_form(
                to="+8190", twiml_url="u", status_callback="cb", sender=Sender(NUMBER_B)
            )
        )
        assert call["From"] == NUMBER_B
        assert (
            dict(twilio.call_form(to="+8190", twiml_url="u", status_callback="cb"))["From"]
            == DEFAULT_NUMBER
        )
    finally:
        await twilio.aclose()


# --- Through the dispatcher, over both HTTP clients ---------------------------------------------


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
async def test_each_councils_check_ins_go_from_its_own_number(
    councils: Councils, twilio: FakeTwilioProcess, http: str
):
    councils.start_rounds()
    await councils.dispatch(twilio, http)
    sent = _sent(twilio)
    assert sent[RESIDENTS["A"]]["from"] == NUMBER_A
    assert sent[RESIDENTS["B"]]["from"] == NUMBER_B
    assert sent[RESIDENTS["C"]]["from"] == DEFAULT_NUMBER  # no number of its own
    assert all(record["messaging_service_sid"] is None for record in sent.values())


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
async def test_a_messaging_service_sends_the_sms_and_the_number_places_the_call(
    councils: Councils, twilio: FakeTwilioProcess, http: str
):
    councils.set_senders("B", {"sender_numbers": [NUMBER_B], "messaging_service_sid": SERVICE_B})
    world = councils.world
    with world.session() as s:
        for key in ("B", "C"):
            for channel in (OutboxChannel.sms, OutboxChannel.call):
                enqueue(
                    s,
                    organization_id=councils.orgs[key],
                    channel=channel,
                    purpose=OutboxPurpose.alert,
                    to_phone=RESIDENTS[key],
                    body="alert" if channel == OutboxChannel.sms else None,
                    now=world.clock.now(),
                )
        s.commit()
    await councils.dispatch(twilio, http)
    sms, calls = _sent(twilio), _sent(twilio, "calls")
    assert (sms[RESIDENTS["B"]]["messaging_service_sid"], sms[RESIDENTS["B"]]["from"]) == (
        SERVICE_B,
        None,
    )
    assert calls[RESIDENTS["B"]]["from"] == NUMBER_B
    assert sms[RESIDENTS["C"]]["from"] == calls[RESIDENTS["C"]]["from"] == DEFAULT_NUMBER


async def test_a_reply_to_b_s_number_lands_in_b_s_inbox(
    councils: Councils, twilio: FakeTwilioProcess
):
    """B's resident answers the check-in from the number it came from: their check-in
    closes. A stranger (a neighbour with the resident's message) texts the same number:
    the message is B's, in B's inbox, not unrouted and not A's."""
    councils.start_rounds()
    await councils.dispatch(twilio, "aiohttp")
    ours = _sent(twilio)[RESIDENTS["B"]]["from"]
    world = councils.world
    for n, (sender, body) in enumerate(((RESIDENTS["B"], "1"), (STRANGER, "隣の者です"))):
        response = world.post(
            "/twilio/sms",
            {"MessageSid": f"SM{n:032d}", "From": sender, "To": ours, "Body": body},
        )
        assert response.status_code == 200, response.text
    process_replies(world.ctx)
    with world.session() as s:
        checkin = s.execute(
            select(CheckIn).where(CheckIn.resident_id == councils.residents["B"])
        ).scalar_one()
        assert checkin.state == CheckInState.ok
        stranger = s.execute(
            select(InboundMessage).where(InboundMessage.from_phone == STRANGER)
        ).scalar_one()
        assert stranger.organization_id == councils.orgs["B"]
        task = s.execute(select(StaffTask).where(StaffTask.inbound_id == stranger.id)).scalar_one()
        assert (task.kind, task.organization_id) == (TaskKind.unknown_sender, councils.orgs["B"])


async def test_a_changed_sender_is_used_within_the_books_time(councils: Councils):
    """The long-running dispatcher looks senders up once per ``ttl`` (a few seconds)."""
    book = SenderBook(ttl=60.0)
    with councils.world.session() as s:
        first = book.senders(s, {councils.orgs["B"], councils.orgs["C"]})
    assert first[councils.orgs["B"]] == ([NUMBER_B], None)
    assert first[councils.orgs["C"]] is None
    councils.set_senders("C", {"sender_numbers": ["+815055556666"]})
    with councils.world.session() as s:
        assert book.senders(s, {councils.orgs["C"]})[councils.orgs["C"]] is None  # remembered
        assert SenderBook(ttl=0.0).senders(s, {councils.orgs["C"]})[councils.orgs["C"]] == (
            ["+815055556666"],
            None,
        )


# --- Reconciling: every council's sender is one of ours -----------------------------------------


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
async def test_a_send_from_a_councils_own_number_is_found_when_reconciling(
    twilio: FakeTwilioProcess, http: str, world: World
):
    """A send whose answer was lost is looked for in Twilio's records: one that went from
    B's number or Messaging Service is ours, one from a number nobody here owns is not."""
    settings = settings_for(twilio, http)
    provider = TwilioProvider.from_settings(settings)
    since = datetime.now(UTC) - timedelta(minutes=1)
    to = RESIDENTS["B"]
    try:
        await provider.send_sms(to=to, body="b", status_callback="cb", sender=Sender(NUMBER_B))
        await provider.place_call(
            to=to, twiml_url="u", status_callback="cb", sender=Sender(NUMBER_B)
        )
        stranger = Sender("+815077778888")
        await provider.send_sms(to=to, body="x", status_callback="cb", sender=stranger)
        ours = frozenset({NUMBER_B, SERVICE_B})
        found = await provider.sent_to(channel="sms", to=to, since=since, senders=ours)
        assert [r.body for r in found] == ["b"]
        calls = await provider.sent_to(channel="call", to=to, since=since, senders=ours)
        assert len(calls) == 1
        # Without the councils' senders, only the installation's own number is ours.
        assert await provider.sent_to(channel="sms", to=to, since=since) == []
        assert await provider.sent_to(channel="call", to=to, since=since) == []
    finally:
        await provider.aclose()
