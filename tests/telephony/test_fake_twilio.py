"""The fake Twilio server the chaos, fault and benchmark runs rely on is itself honest.

Its resources, required fields and list filters are checked against Twilio's OpenAPI
description (``../shared/fixtures/twilio/twilio_api_v2010.json``), and it is driven through
the real twilio library where the service would drive it. A fake that accepted what Twilio
refuses, or listed what Twilio would not, would let the dispatcher's tests pass for nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.rest import Client

from service.telephony.httpx_client import HttpxTwilioClient
from tests.support.fake_twilio import FakeConfig, FakeTwilioProcess
from tests.support.fake_twilio.server import PERMANENT_MESSAGES

FROM = "+815012345678"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls.json"


@pytest.fixture
def spec(fixtures_dir: Path) -> dict[str, Any]:
    return json.loads((fixtures_dir / "twilio" / "twilio_api_v2010.json").read_text())


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTwilioProcess]:
    with FakeTwilioProcess(FakeConfig(latency_ms=5, deliver_after_ms=300)) as process:
        yield process


@pytest.fixture
def twilio(fake: FakeTwilioProcess) -> FakeTwilioProcess:
    """The module's server, emptied and back to no faults for each test."""
    fake.reset()
    fake.configure(
        **{
            k: v
            for k, v in FakeConfig(latency_ms=5, deliver_after_ms=300).__dict__.items()
            if k not in ("account_sid", "auth_token")
        }
    )
    return fake


def api(twilio: FakeTwilioProcess, resource: str) -> str:
    return f"{twilio.url}/2010-04-01/Accounts/{twilio.config.account_sid}/{resource}"


HTTP = httpx.Client(timeout=10)  # one pool: hundreds of requests per test


def post(
    twilio: FakeTwilioProcess, resource: str, form: dict[str, str], **kw: Any
) -> httpx.Response:
    auth = kw.pop("auth", (twilio.config.account_sid, twilio.config.auth_token))
    return HTTP.post(api(twilio, resource), data=form, auth=auth, timeout=kw.pop("timeout", 10))


def get(twilio: FakeTwilioProcess, resource: str, params: Any = None) -> httpx.Response:
    auth = (twilio.config.account_sid, twilio.config.auth_token)
    return HTTP.get(api(twilio, resource), params=params, auth=auth)


def sms(to: str, body: str = "大丈夫ですか?") -> dict[str, str]:
    return {
        "To": to,
        "From": FROM,
        "Body": body,
        "StatusCallback": "https://x.example/twilio/status",
    }


def client_for(twilio: FakeTwilioProcess) -> Client:
    """The real twilio library over the service's own HTTP client, pointed at the fake."""
    return Client(
        twilio.config.account_sid,
        twilio.config.auth_token,
        http_client=HttpxTwilioClient(api_base_url=twilio.url),
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )


# --- Shapes and fields, against the spec ------------------------------------------------------------


def test_created_resources_have_the_spec_shape_and_unique_sids(twilio, spec):
    schemas = spec["components"]["schemas"]
    message_keys = set(schemas["api.v2010.account.message"]["properties"])
    call_keys = set(schemas["api.v2010.account.call"]["properties"])
    sids = set()
    for n in range(20):
        response = post(twilio, "Messages.json", sms(f"+8190{n:08d}"))
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == message_keys
        assert body["status"] == "queued" and body["date_sent"] is None
        assert body["to"] == f"+8190{n:08d}" and body["from"] == FROM
        sids.add(body["sid"])
    call = post(
        twilio,
        "Calls.json",
        {"To": "+819011112222", "From": FROM, "Url": "https://x.example/twilio/voice"},
    )
    assert call.status_code == 201, call.text
    assert set(call.json()) == call_keys
    assert call.json()["status"] == "queued" and call.json()["start_time"] is None
    sids.add(call.json()["sid"])
    assert len(sids) == 21
    assert all(len(sid) == 34 for sid in sids)
    assert [m["sid"] for m in twilio.messages()] == sorted(sids - {call.json()["sid"]})


def test_required_fields_are_the_specs(twilio, spec):
    """The spec names To (messages) and To, From (calls); Twilio also needs a sender and
    a body for a message and a Url for a call. Each missing one is refused, nothing made."""
    for path in (MESSAGES, CALLS):
        schema = spec["paths"][path]["post"]["requestBody"]["content"][
            "application/x-www-form-urlencoded"
        ]["schema"]
        assert set(schema["required"]) == ({"To"} if path == MESSAGES else {"To", "From"})
        senders = {"Body", "MessagingServiceSid", "From"} if path == MESSAGES else {"Url"}
        assert senders <= set(schema["properties"])
    cases = [
        ("Messages.json", {"From": FROM, "Body": "x"}, 21604),
        ("Messages.json", {"To": "+819012345678", "Body": "x"}, 21603),
        ("Messages.json", {"To": "+819012345678", "From": FROM}, 21602),
        ("Messages.json", {"To": "090-1234-5678", "From": FROM, "Body": "x"}, 21211),
        ("Calls.json", {"From": FROM, "Url": "https://x.example/v"}, 21604),
        ("Calls.json", {"To": "+819012345678", "Url": "https://x.example/v"}, 21603),
        ("Calls.json", {"To": "+819012345678", "From": FROM}, 21205),
    ]
    for resource, form, code in cases:
        response = post(twilio, resource, form)
        assert response.status_code == 400, (form, response.text)
        assert response.json()["code"] == code
    # A Messaging Service instead of From is a sender too.
    ok = post(
        twilio,
        "Messages.json",
        {"To": "+819012345678", "MessagingServiceSid": "MG" + "1" * 32, "Body": "x"},
    )
    assert ok.status_code == 201 and ok.json()["messaging_service_sid"] == "MG" + "1" * 32
    assert len(twilio.messages()) == 1


def test_basic_auth_and_the_account_in_the_path(twilio):
    wrong = post(
        twilio, "Messages.json", sms("+819012345678"), auth=(twilio.config.account_sid, "nope")
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == 20003
    nobody = httpx.post(f"{api(twilio, 'Messages.json')}", data=sms("+819012345678"))
    assert nobody.status_code == 401
    other = httpx.post(
        f"{twilio.url}/2010-04-01/Accounts/AC{'9' * 32}/Messages.json",
        data=sms("+819012345678"),
        auth=(twilio.config.account_sid, twilio.config.auth_token),
    )
    assert other.status_code == 404 and other.json()["code"] == 20404
    assert get(twilio, "Messages.json").status_code == 200
    assert httpx.get(api(twilio, "Messages.json")).status_code == 401
    assert twilio.messages() == []


# --- List resources -----------------------------------------------------------------------------------


def test_list_filters_are_the_specs(spec):
    """Every filter the fake reads is a query parameter of the spec's list operation."""
    names = {
        path: {p["name"] for p in spec["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        for path in (MESSAGES, CALLS)
    }
    assert {
        "To",
        "From",
        "DateSent",
        "DateSent<",
        "DateSent>",
        "PageSize",
        "Page",
        "PageToken",
    } <= names[MESSAGES]
    assert {
        "To",
        "From",
        "Status",
        "StartTime",
        "StartTime<",
        "StartTime>",
        "PageSize",
        "Page",
        "PageToken",
    } <= names[CALLS]


def test_a_message_is_listed_by_date_only_once_it_is_sent(twilio):
    """As on Twilio: a queued message has no date_sent, so a date filter does not find it;
    filtered by To alone it is there from the start."""
    before = datetime.now(UTC) - timedelta(seconds=2)
    post(twilio, "Messages.json", sms("+819000000001"))
    post(twilio, "Messages.json", sms("+819000000002"))
    after_filter = {"To": "+819000000001", "DateSent>": before.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert get(twilio, "Messages.json", after_filter).json()["messages"] == []
    by_to = get(twilio, "Messages.json", {"To": "+819000000001"}).json()["messages"]
    assert [m["to"] for m in by_to] == ["+819000000001"] and by_to[0]["status"] == "queued"
    time.sleep(0.4)
    listed = get(twilio, "Messages.json", after_filter).json()["messages"]
    assert [m["status"] for m in listed] == ["sent"] and listed[0]["date_sent"]
    # The date forms of the spec: a day, on or before, on or after; and From.
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    assert (
        len(get(twilio, "Messages.json", {"DateSent": today.isoformat()}).json()["messages"]) == 2
    )
    assert (
        get(twilio, "Messages.json", {"DateSent>": tomorrow.isoformat()}).json()["messages"] == []
    )
    assert (
        len(get(twilio, "Messages.json", {"DateSent<": today.isoformat()}).json()["messages"]) == 2
    )
    later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert get(twilio, "Messages.json", {"DateSent>": later}).json()["messages"] == []
    assert get(twilio, "Messages.json", {"From": "+815000000000"}).json()["messages"] == []
    assert get(twilio, "Messages.json", {"DateSent>": "yesterday"}).status_code == 400


def test_calls_are_listed_by_to_status_and_start_time(twilio):
    start = datetime.now(UTC) - timedelta(seconds=2)
    for to in ("+819000000011", "+819000000012"):
        call = post(twilio, "Calls.json", {"To": to, "From": FROM, "Url": "https://x.example/v"})
        assert call.status_code == 201
    since = {"StartTime>": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert get(twilio, "Calls.json", {**since, "To": "+819000000011"}).json()["calls"] == []
    assert len(get(twilio, "Calls.json", {"Status": "queued"}).json()["calls"]) == 2
    time.sleep(0.4)
    listed = get(twilio, "Calls.json", {**since, "To": "+819000000011"}).json()["calls"]
    assert [c["to"] for c in listed] == ["+819000000011"] and listed[0]["start_time"]
    assert get(twilio, "Calls.json", {"Status": "queued"}).json()["calls"] == []


@pytest.mark.anyio
async def test_the_twilio_library_pages_through_a_list_newest_first(twilio):
    twilio.configure(deliver_after_ms=1500)
    to = "+819000000021"
    for n in range(7):
        post(twilio, "Messages.json", sms(to, f"#{n}"))
    post(twilio, "Messages.json", sms("+819000000022"))
    client = client_for(twilio)
    try:
        listed = await client.messages.list_async(to=to, page_size=3)
        page = await client.messages.page_async(to=to, page_size=3)
        assert page._payload["next_page_uri"] and page._payload["page_size"] == 3
        sent = await client.messages.list_async(
            to=to, date_sent_after=datetime.now(UTC) - timedelta(minutes=1)
        )
        time.sleep(1.6)
        sent_later = await client.messages.list_async(
            to=to, date_sent_after=datetime.now(UTC) - timedelta(minutes=1)
        )
        fetched = await client.messages(listed[0].sid).fetch_async()
    finally:
        await client.http_client.aclose()
    assert [m.body for m in listed] == [f"#{n}" for n in reversed(range(7))]
    assert sent == [] and len(sent_later) == 7
    assert fetched.body == "#6"


# --- Faults ----------------------------------------------------------------------------------------------


def test_server_errors_create_nothing_and_keep_their_ratio_per_seed(twilio):
    twilio.configure(error_5xx=0.3, seed=7)
    statuses = [post(twilio, "Messages.json", sms(f"+8170{n:08d}")).status_code for n in range(300)]
    failed = [s for s in statuses if s >= 500]
    assert set(failed) <= {500, 503} and 0.22 <= len(failed) / 300 <= 0.38
    assert len(twilio.messages()) == statuses.count(201)
    bodies = [r for r in twilio.requests() if r["outcome"] in ("500", "503")]
    assert len(bodies) == len(failed) and all("sid" not in r for r in bodies)
    # The same seed gives the same attempts the same fate, in any order.
    twilio.reset()
    again = {
        n: post(twilio, "Messages.json", sms(f"+8170{n:08d}")).status_code
        for n in reversed(range(300))
    }
    assert [again[n] >= 500 for n in range(300)] == [s >= 500 for s in statuses]
    # A second attempt for the same number gets a draw of its own.
    retry = [post(twilio, "Messages.json", sms(f"+8170{n:08d}")).status_code for n in range(300)]
    assert [s >= 500 for s in retry] != [s >= 500 for s in statuses]


def test_a_timeout_after_create_leaves_the_message_at_twilio(twilio):
    twilio.configure(timeout_after_create=1.0, hang_seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        post(twilio, "Messages.json", sms("+819000000031"), timeout=httpx.Timeout(5, read=0.5))
    [message] = twilio.messages()
    assert message["to"] == "+819000000031"
    assert twilio.requests()[0]["outcome"] == "timeout"
    assert [
        m["sid"] for m in get(twilio, "Messages.json", {"To": "+819000000031"}).json()["messages"]
    ] == [message["sid"]]


def test_a_429_starts_a_burst_with_retry_after(twilio):
    twilio.configure(burst_429=1.0, burst_seconds=0.6, retry_after=3)
    first = post(twilio, "Messages.json", sms("+819000000041"))
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert first.json()["code"] == 20429
    twilio.configure(burst_429=0.0)
    during = post(twilio, "Messages.json", sms("+819000000042"))
    assert during.status_code == 429
    time.sleep(0.7)
    assert post(twilio, "Messages.json", sms("+819000000042")).status_code == 201
    outcomes = [(r["to"], r["outcome"], r.get("retry_after")) for r in twilio.requests()]
    assert outcomes == [
        ("+819000000041", "429", 3),
        ("+819000000042", "429", 3),
        ("+819000000042", "created", None),
    ]


def test_permanent_failures_per_number(twilio):
    twilio.configure(permanent={"+819000000051": 21610, "+819000000052": 21614})
    for to, code in (("+819000000051", 21610), ("+819000000052", 21614)):
        response = post(twilio, "Messages.json", sms(to))
        assert response.status_code == 400
        assert response.json() == {
            "code": code,
            "message": PERMANENT_MESSAGES[code],
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": 400,
        }
    assert post(twilio, "Messages.json", sms("+819000000053")).status_code == 201
    assert Counter(m["to"] for m in twilio.messages()) == {"+819000000053": 1}


def test_twilio_unavailable_for_lists(twilio):
    post(twilio, "Messages.json", sms("+819000000061"))
    twilio.configure(list_error_5xx=1.0)
    response = get(twilio, "Messages.json", {"To": "+819000000061"})
    assert response.status_code == 503 and response.json()["code"] == 20503
    sid = twilio.messages()[0]["sid"]
    assert get(twilio, f"Messages/{sid}.json").status_code == 503
    twilio.configure(list_error_5xx=0.0)
    assert get(twilio, f"Messages/{sid}.json").json()["sid"] == sid


def test_latency_is_applied_and_unknown_settings_refused(twilio):
    twilio.configure(latency_ms=150)
    started = time.monotonic()
    post(twilio, "Messages.json", sms("+819000000071"))
    assert time.monotonic() - started >= 0.15
    refused = httpx.post(f"{twilio.url}/_fake/config", json={"latency": 1})
    assert refused.status_code == 400 and "latency" in refused.json()["error"]
    stats = twilio.stats()
    assert stats["messages"] == 1 and stats["outcomes"] == {"created": 1}
    assert twilio.cpu_seconds() > 0
