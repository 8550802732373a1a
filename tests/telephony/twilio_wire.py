"""A Twilio that keeps a record, on aiohttp's wire (aioresponses): creates answer 201 with
a new SID, and the Message and Call list resources list what was created, as Twilio's do.

The dispatcher's tests use it with the real ``TwilioProvider`` and its default aiohttp
client, so every request goes through the real form encoding, error classification and
list parsing; only the socket is replaced. Faults are scripted per request: an error
answer, a delay, or "create it, then time out" (the ambiguous case).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aioresponses import CallbackResult, aioresponses

from tests.telephony.conftest import ACCOUNT_SID

API = "https://api.twilio.com"
ACCOUNT = f"{API}/2010-04-01/Accounts/{ACCOUNT_SID}"
RESOURCE = re.compile(re.escape(ACCOUNT) + r"/(Messages|Calls)\.json(\?.*)?$")


@dataclass
class Created:
    sid: str
    kind: str  # "Messages" or "Calls"
    form: dict[str, str]
    created_at: datetime
    at: float  # time.monotonic() when the request arrived

    @property
    def to(self) -> str:
        return self.form["To"]


@dataclass
class TwilioWire:
    """What the fake Twilio received and created. ``script`` decides each create's fate:
    it gets the form and returns None (accept), an ``int`` HTTP status (with a Twilio error
    body), a ``(status, headers)`` pair, a Twilio error body (a dict with its status), a float delay, or a read timeout after Twilio created
    the resource (``"create-then-timeout"``) or before it did (``"timeout-before-create"``)."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    script: Callable[[dict[str, str]], Any] = lambda form: None
    list_fails: bool = False
    created: list[Created] = field(default_factory=list)
    posts: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    lists: list[dict[str, str]] = field(default_factory=list)
    _sids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def sends_to(self, to: str) -> list[Created]:
        return [c for c in self.created if c.to == to]

    async def handle(self, url: Any, **kwargs: Any) -> CallbackResult:
        kind = RESOURCE.match(str(url)).group(1)  # type: ignore[union-attr]
        if kwargs.get("method", "POST") == "GET" or kwargs.get("data") is None:
            return self._list(kind, url, kwargs)
        form = dict(parse_qsl(kwargs["data"].decode()))
        self.posts.append((time.monotonic(), form))
        fate = self.script(form)
        if isinstance(fate, float):
            await asyncio.sleep(fate)
            fate = None
        if fate in ("create-then-timeout", "timeout-before-create"):
            if fate == "create-then-timeout":
                self._create(kind, form)
            raise aiohttp.SocketTimeoutError("Timeout on reading data from socket")
        if isinstance(fate, dict):  # a Twilio error body, e.g. {"status": 400, "code": 21610}
            return CallbackResult(status=fate["status"], payload={"message": "scripted", **fate})
        if isinstance(fate, int | tuple):
            status, headers = fate if isinstance(fate, tuple) else (fate, {})
            return CallbackResult(
                status=status,
                payload={"code": 20000 + status, "message": "scripted", "status": status},
                headers=headers,
            )
        created = self._create(kind, form)
        return CallbackResult(status=201, payload=self._resource(created))

    def _create(self, kind: str, form: dict[str, str]) -> Created:
        prefix = "SM" if kind == "Messages" else "CA"
        sid = f"{prefix}{next(self._sids):032d}"
        created = Created(sid, kind, form, self.clock(), time.monotonic())
        self.created.append(created)
        return created

    def _resource(self, created: Created) -> dict[str, Any]:
        return {
            "sid": created.sid,
            "status": "queued",
            "to": created.to,
            "from": created.form.get("From"),
            "messaging_service_sid": created.form.get("MessagingServiceSid"),
            "body": created.form.get("Body"),
            "date_created": format_datetime(created.created_at, usegmt=True),
            "date_sent": None,
        }

    def _list(self, kind: str, url: Any, kwargs: dict[str, Any]) -> CallbackResult:
        params = {k: str(v) for k, v in (kwargs.get("params") or {}).items()}
        self.lists.append({"kind": kind, **params})
        if self.list_fails:
            return CallbackResult(status=503, payload={"code": 20503, "message": "down"})
        items = [
            self._resource(c)
            for c in reversed(self.created)
            if c.kind == kind and c.to == params.get("To")
        ]
        key = "messages" if kind == "Messages" else "calls"
        return CallbackResult(status=200, payload={key: items, "next_page_uri": None, "page": 0})


@contextmanager
def twilio_wire(wire: TwilioWire) -> Iterator[TwilioWire]:
    """Route every request to Twilio's Messages and Calls resources to ``wire``."""
    with aioresponses() as mocked:
        for method in ("POST", "GET"):
            mocked.add(RESOURCE, method=method, callback=_bind(wire, method), repeat=True)
        yield wire


def _bind(wire: TwilioWire, method: str) -> Callable[..., Any]:
    async def callback(url: Any, **kwargs: Any) -> CallbackResult:
        return await wire.handle(url, method=method, **kwargs)

    return callback
