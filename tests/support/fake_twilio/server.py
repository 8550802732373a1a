"""A Twilio-compatible REST server for tests and benchmarks (aiohttp.web, one process).

It answers the four resources the dispatcher uses, shaped as in Twilio's OpenAPI description
of API v2010 (``../shared/fixtures/twilio/twilio_api_v2010.json``):

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` and ``.../Calls.json``: Basic
  auth (account SID and auth token), the required form fields, a resource with a unique SID
  and status ``queued``, status 201;
- ``GET`` on the same paths: the list resources, filtered by ``To``, ``From``,
  ``DateSent``/``DateSent<``/``DateSent>`` (messages) or ``Status``,
  ``StartTime``/``StartTime<``/``StartTime>`` (calls), paged with ``PageSize``, ``Page``
  and ``PageToken``, newest first;
- ``GET .../Messages/{Sid}.json`` and ``.../Calls/{Sid}.json``.

As on Twilio, a message has no ``date_sent`` (and a call no ``start_time``) while it is
queued: it is "sent" ``deliver_after_ms`` after it was created, and only then does a date
filter find it. A reconciliation that asks by date too early gets an empty list, as it
would from Twilio.

Faults are drawn per request, from a hash of the seed, the recipient and how many requests
for that recipient came before, so a given attempt meets the same fault in every run
whatever the order requests arrive in:

- ``error_5xx``: that share of creates answers 500 or 503 *without* creating anything;
- ``timeout_after_create``: that share creates the resource, then holds the answer for
  ``hang_seconds`` (longer than the client's timeout): the resource exists, the client
  never learns its SID (with ``hang_then="drop"`` the connection is then closed without
  an answer, which the client sees as a request cut off after it was sent);
- ``burst_429``: that share of creates starts a burst of ``burst_seconds`` during which
  every create answers 429 with ``Retry-After: retry_after``;
- ``list_error_5xx``: that share of list and fetch requests answers 503 (Twilio cannot be
  asked);
- ``permanent``: numbers that always fail with a given Twilio error code (21610, 21614,
  21211, ...), status 400, nothing created.

Everything accepted is recorded with its time, and every create request (whatever its
outcome) too, for tests to check exactly-once delivery and retry timing through the
``/_fake/...`` endpoints:

- ``GET /_fake/messages``, ``GET /_fake/calls``: every created resource, in order;
- ``GET /_fake/requests``: every create request with its arrival time and outcome;
- ``GET /_fake/stats``: counts, and the CPU seconds this process used;
- ``POST /_fake/config`` (JSON): change the latency or faults while running;
- ``POST /_fake/reset``: forget everything recorded (the configuration stays).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import os
import re
import resource
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

API = "/2010-04-01/Accounts/{account}"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass
class FakeConfig:
    """What the server does; every field can be changed at run time (``/_fake/config``)."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-twilio-auth-token-000000000"
    latency_ms: float = 100.0
    seed: int = 0
    error_5xx: float = 0.0
    timeout_after_create: float = 0.0
    hang_seconds: float = 300.0
    # After hanging: "answer" late (a client with a longer timeout still gets its 201), or
    # "drop" the connection without an answer, which a client sees as its request cut off
    # after it was sent, like its own read timeout (for tests that cannot wait 30 s).
    hang_then: str = "answer"
    burst_429: float = 0.0
    burst_seconds: float = 1.0
    retry_after: int = 2
    list_error_5xx: float = 0.0
    deliver_after_ms: float = 500.0
    permanent: dict[str, int] = field(default_factory=dict)

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        for name, value in values.items():
            setattr(self, name, value)


# Twilio's error codes for what the fake refuses, with its wording.
PERMANENT_MESSAGES = {
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
        headers=headers,
    )


def rfc2822(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return format_datetime(datetime.fromtimestamp(epoch, UTC).replace(microsecond=0), usegmt=False)


def draw(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) fixed by the seed and the parts, whatever the call order."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FakeTwilio:
    """The state of one fake Twilio account: what was created, what was asked, the faults."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.started = time.time()
        self.reset()

    def reset(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.by_sid: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.attempts: dict[tuple[str, str], int] = {}
        self.lists = 0
        self.in_flight = 0
        self.burst_until = 0.0
        self._serial = itertools.count(1)
        self._run = hashlib.blake2b(os.urandom(8), digest_size=6).hexdigest()

    # --- Building resources -------------------------------------------------------------------

    def _sid(self, prefix: str) -> str:
        return f"{prefix}{self._run}{next(self._serial):020x}"

    def message_resource(self, record: dict[str, Any], now: float) -> dict[str, Any]:
        """The spec's ``api.v2010.account.message``, with status as of ``now``."""
        sent_at = record["created"] + self.config.deliver_after_ms / 1000
        sent = now >= sent_at
        sid, account = record["sid"], self.config.account_sid
        uri = f"/2010-04-01/Accounts/{account}/Messages/{sid}"
        return {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": record["body"],
            "date_created": rfc2822(record["created"]),
            "date_sent": rfc2822(sent_at) if sent else None,
            "date_updated": rfc2822(sent_at if sent else record["created"]),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": record["from"],
            "messaging_service_sid": record["messaging_service_sid"],
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "sent" if sent else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": record["to"],
            "uri": f"{uri}.json",
        }

    def call_resource(self, record: dict[str, Any], now: float) -> dict[str, Any]:
        """The spec's ``api.v2010.account.call``; it starts ``deliver_after_ms`` after creation."""
        start_at = record["created"] + self.config.deliver_after_ms / 1000
        started = now >= start_at
        sid, account = record["sid"], self.config.account_sid
        uri = f"/2010-04-01/Accounts/{account}/Calls/{sid}"
        return {
            "account_sid": account,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": rfc2822(record["created"]),
            "date_updated": rfc2822(start_at if started else record["created"]),
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": record["from"],
            "from_formatted": record["from"],
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": rfc2822(start_at) if started else None,
            "status": "in-progress" if started else "queued",
            "subresource_uris": {"recordings": f"{uri}/Recordings.json"},
            "to": record["to"],
            "to_formatted": record["to"],
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }

    # --- Faults ---------------------------------------------------------------------------------

    def fault_for(self, kind: str, to: str, now: float) -> str | None:
        """Which fault this create request meets: ``429``, ``5xx``, ``timeout`` or None."""
        config = self.config
        attempt = self.attempts.get((kind, to), 0)
        self.attempts[(kind, to)] = attempt + 1
        if now < self.burst_until:
            return "429"
        if config.burst_429 and draw(config.seed, "burst", kind, to, attempt) < config.burst_429:
            self.burst_until = now + config.burst_seconds
            return "429"
        roll = draw(config.seed, "fault", kind, to, attempt)
        if roll < config.error_5xx:
            return "5xx"
        if roll < config.error_5xx + config.timeout_after_create:
            return "timeout"
        return None


STATE: web.AppKey[FakeTwilio] = web.AppKey("state", FakeTwilio)


def _authorized(request: web.Request, state: FakeTwilio) -> web.Response | None:
    """Twilio's answers to a wrong account in the path or wrong credentials."""
    config = state.config
    header = request.headers.get("Authorization", "")
    user = password = None
    if header.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            pass
    if user != config.account_sid or password != config.auth_token:
        return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
    if request.match_info["account"] != config.account_sid:
        return _error(404, 20404, "The requested resource was not found")
    return None


def _missing(kind: str, form: dict[str, str]) -> web.Response | None:
    """The required fields of the spec's create operations, and Twilio's codes for them."""
    if not form.get("To"):
        return _error(400, 21604, "A 'To' phone number is required.")
    if kind == "message":
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
            return _error(400, 21602, "Message body is required.")
    else:
        if not form.get("From"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return _error(400, 21205, "Url parameter is required.")
    if not E164.match(form["To"]):
        return _error(400, 21211, PERMANENT_MESSAGES[21211])
    return None


async def create(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.in_flight += 1
    try:
        return await _create(request, state)
    finally:
        state.in_flight -= 1


async def _create(request: web.Request, state: FakeTwilio) -> web.Response:
    kind = "message" if request.path.endswith("/Messages.json") else "call"
    denied = _authorized(request, state)
    if denied is not None:
        return denied
    form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
    config = state.config
    arrived = time.time()
    to = form.get("To", "")
    entry: dict[str, Any] = {"t": arrived, "kind": kind, "to": to, "body": form.get("Body")}
    state.requests.append(entry)
    invalid = _missing(kind, form)
    if invalid is not None:
        entry["outcome"] = f"rejected {invalid.status}"
        return invalid
    if to in config.permanent:
        code = int(config.permanent[to])
        entry["outcome"] = f"permanent {code}"
        return _error(400, code, PERMANENT_MESSAGES.get(code, "Permanent failure"))
    fault = state.fault_for(kind, to, arrived)
    latency = config.latency_ms / 1000
    if fault == "429":
        entry["outcome"], entry["retry_after"] = "429", config.retry_after
        await asyncio.sleep(latency)
        return _error(429, 20429, "Too Many Requests", {"Retry-After": str(config.retry_after)})
    if fault == "5xx":
        status = 500 if draw(config.seed, "status", to, arrived) < 0.5 else 503
        entry["outcome"] = str(status)
        await asyncio.sleep(latency)
        text = "Internal Server Error" if status == 500 else "Service Unavailable"
        return _error(status, 20000 + status, text)
    record = {
        "sid": state._sid("SM" if kind == "message" else "CA"),
        "kind": kind,
        "to": to,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "body": form.get("Body"),
        "url": form.get("Url"),
        "status_callback": form.get("StatusCallback"),
        "created": arrived,
    }
    (state.messages if kind == "message" else state.calls).append(record)
    state.by_sid[record["sid"]] = record
    entry["sid"] = record["sid"]
    if fault == "timeout":
        entry["outcome"] = "timeout"
        await asyncio.sleep(config.hang_seconds)
        if config.hang_then == "drop" and request.transport is not None:
            request.transport.abort()
            raise asyncio.CancelledError  # nothing more is written on this connection
    else:
        entry["outcome"] = "created"
        await asyncio.sleep(latency)
    resource_ = (state.message_resource if kind == "message" else state.call_resource)(
        record, time.time()
    )
    return web.json_response(resource_, status=201)


def _parse_moment(value: str) -> tuple[float, bool]:
    """A filter value as (epoch, whole day?): ``YYYY-MM-DD`` or an ISO 8601 date-time."""
    value = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        day = date.fromisoformat(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp(), True
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp(), False


def _date_filter(query: Any, name: str) -> Any:
    """A predicate over a moment (epoch or None) for ``name``, ``name<`` and ``name>``."""
    checks = []
    for suffix in ("", "<", ">"):
        raw = query.get(name + suffix)
        if raw is None:
            continue
        at, whole_day = _parse_moment(raw)
        end = at + 86400 if whole_day else at
        if suffix == "":
            checks.append(
                lambda t, at=at, end=end, day=whole_day: at <= t < end if day else t == at
            )
        elif suffix == "<":  # on or before
            checks.append(lambda t, end=end, day=whole_day: t < end if day else t <= end)
        else:  # on or after
            checks.append(lambda t, at=at: t >= at)
    return lambda t: all(check(t) for check in checks) if checks else True


async def list_resources(request: web.Request) -> web.Response:
    state = request.app[STATE]
    denied = _authorized(request, state)
    if denied is not None:
        return denied
    kind = "message" if request.path.endswith("/Messages.json") else "call"
    state.lists += 1
    config = state.config
    query = request.query
    if (
        config.list_error_5xx
        and draw(config.seed, "list", state.lists, time.time()) < config.list_error_5xx
    ):
        await asyncio.sleep(config.latency_ms / 1000)
        return _error(503, 20503, "Service Unavailable")
    try:
        page_size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
        page = int(query.get("Page", 0))
        offset = int(query["PageToken"][2:], 16) if "PageToken" in query else page * page_size
        if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0 or offset < 0:
            raise ValueError
        dated = "DateSent" if kind == "message" else "StartTime"
        when = _date_filter(query, dated)
    except (ValueError, KeyError):
        return _error(400, 20001, "Invalid paging or date parameter")
    now = time.time()
    build = state.message_resource if kind == "message" else state.call_resource
    moment = "date_sent" if kind == "message" else "start_time"
    matched = []
    for record in reversed(state.messages if kind == "message" else state.calls):
        if "To" in query and record["to"] != query["To"]:
            continue
        if "From" in query and record["from"] != query["From"]:
            continue
        item = build(record, now)
        if kind == "call" and "Status" in query and item["status"] != query["Status"]:
            continue
        at = record["created"] + config.deliver_after_ms / 1000 if item[moment] else None
        if at is None and any(name in query for name in (dated, dated + "<", dated + ">")):
            continue  # not sent (or started) yet: no date filter finds it, as on Twilio
        if at is not None and not when(at):
            continue
        matched.append(item)
    chunk = matched[offset : offset + page_size]
    base = request.path
    keep = [(k, v) for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")]

    def page_uri(number: int, start: int | None) -> str:
        params = [*keep, ("PageSize", str(page_size)), ("Page", str(number))]
        if start is not None:
            params.append(("PageToken", f"PA{start:x}"))
        return f"{base}?{urlencode(params)}"

    more = offset + page_size < len(matched)
    body = {
        "calls" if kind == "call" else "messages": chunk,
        "end": offset + len(chunk) - 1 if chunk else offset,
        "first_page_uri": page_uri(0, None),
        "next_page_uri": page_uri(page + 1, offset + page_size) if more else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": page_uri(page - 1, max(0, offset - page_size)) if page else None,
        "start": offset,
        "uri": str(request.rel_url),
    }
    await asyncio.sleep(config.latency_ms / 1000)
    return web.json_response(body)


async def fetch(request: web.Request) -> web.Response:
    state = request.app[STATE]
    denied = _authorized(request, state)
    if denied is not None:
        return denied
    config = state.config
    if config.list_error_5xx and draw(config.seed, "fetch", time.time()) < config.list_error_5xx:
        return _error(503, 20503, "Service Unavailable")
    record = state.by_sid.get(request.match_info["sid"])
    kind = "message" if "/Messages/" in request.path else "call"
    if record is None or record["kind"] != kind:
        return _error(404, 20404, "The requested resource was not found")
    build = state.message_resource if kind == "message" else state.call_resource
    return web.json_response(build(record, time.time()))


# --- The test's side ------------------------------------------------------------------------------


async def fake_records(request: web.Request) -> web.Response:
    state = request.app[STATE]
    what = request.match_info["what"]
    if what == "messages":
        return web.json_response(state.messages)
    if what == "calls":
        return web.json_response(state.calls)
    if what == "requests":
        return web.json_response(state.requests)
    if what == "stats":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        outcomes: dict[str, int] = {}
        for entry in state.requests:
            outcomes[entry.get("outcome", "?")] = outcomes.get(entry.get("outcome", "?"), 0) + 1
        return web.json_response(
            {
                "messages": len(state.messages),
                "calls": len(state.calls),
                "requests": len(state.requests),
                "lists": state.lists,
                "in_flight": state.in_flight,
                "outcomes": outcomes,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "pid": os.getpid(),
            }
        )
    if what == "config":
        return web.json_response(asdict(state.config))
    raise web.HTTPNotFound()


async def fake_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.config.update(await request.json())
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(asdict(state.config))


async def fake_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True})


def make_app(config: FakeConfig | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = FakeTwilio(config or FakeConfig())
    for name in ("Messages", "Calls"):
        app.router.add_post(f"{API}/{name}.json", create)
        app.router.add_get(f"{API}/{name}.json", list_resources)
        app.router.add_get(f"{API}/{name}/{{sid}}.json", fetch)
    app.router.add_get("/_fake/{what}", fake_records)
    app.router.add_post("/_fake/config", fake_config)
    app.router.add_post("/_fake/reset", fake_reset)
    return app
