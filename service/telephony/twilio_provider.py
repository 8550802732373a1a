"""The Twilio channel: form posts to Twilio's REST API, with classified errors.

The provider posts the same form fields the twilio SDK would (``tests/telephony/
test_openapi_parameters.py`` checks every field against Twilio's OpenAPI description) straight
to the REST endpoint. Going through the SDK's resource classes cost more CPU per message than
the request itself; in a disaster the dispatcher is bound by CPU. The transport is aiohttp by
default (``MIMAMORI_TWILIO_HTTP_CLIENT``); httpx stays available, both behind the SDK's
``AsyncHttpClient`` interface.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn
from urllib.parse import urlencode

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from service.config import Settings
from service.privacy import mask_phone
from service.telephony.aiohttp_client import AiohttpTwilioClient
from service.telephony.channel import ReconcileUnavailable, Sender, SendResult, SentRecord
from service.telephony.errors import (
    PermanentSendError,
    SendError,
    TransientSendError,
    classify_http_error,
    classify_transport_error,
    parse_retry_after,
)
from service.telephony.httpx_client import TWILIO_API_BASE, HttpxTwilioClient

logger = logging.getLogger(__name__)

# Every event, so the attempt shows "ringing" and "answered" on the board, not only the end.
CALL_STATUS_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")

# Seconds to let the phone ring. Elderly residents are slow to reach the phone; much
# longer and a carrier voicemail answers instead (which AMD then has to detect).
CALL_RING_TIMEOUT_SECONDS = 45

# Twilio's clock and ours differ a little; a message created a minute before our claim is
# still looked at when reconciling (it can only match if its body and number match too).
RECONCILE_CLOCK_SKEW = timedelta(minutes=1)
# Pages of a list resource read while reconciling one row: newest first, 50 a page.
RECONCILE_PAGE_SIZE = 50
RECONCILE_MAX_PAGES = 4

MachineDetection = Literal["Enable", "DetectMessageEnd"]
HttpClientName = Literal["aiohttp", "httpx"]

FORM = "application/x-www-form-urlencoded"


def make_http_client(
    name: HttpClientName, api_url: str, connections: int, read_timeout: float = 30.0
) -> AsyncHttpClient:
    if name == "httpx":
        timeout = httpx.Timeout(connect=5.0, read=read_timeout, write=10.0, pool=10.0)
        return HttpxTwilioClient(api_base_url=api_url, timeout=timeout)
    return AiohttpTwilioClient(
        api_base_url=api_url, connections=connections, read_timeout=read_timeout
    )


class TwilioProvider:
    """Sends through Twilio's REST API.

    A sender must be configured: a Messaging Service (preferred for SMS, because Twilio
    then picks a suitable number and handles opt-outs per service) or a From number.
    Calls always need the From number.
    """

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_url: str = TWILIO_API_BASE,
        http_client: AsyncHttpClient | None = None,
        http_client_name: HttpClientName = "aiohttp",
        connections: int = 256,
        read_timeout: float = 30.0,
        machine_detection: MachineDetection = "Enable",
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError(
                "Twilio needs MIMAMORI_TWILIO_FROM_NUMBER or "
                "MIMAMORI_TWILIO_MESSAGING_SERVICE_SID to send from"
            )
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.machine_detection = machine_detection
        self.http_client = http_client or make_http_client(
            http_client_name, api_url, connections, read_timeout
        )
        # Requests name api.twilio.com; the client rewrites them to MIMAMORI_TWILIO_API_URL.
        base = f"{TWILIO_API_BASE}/2010-04-01/Accounts/{account_sid}"
        self.messages_url = f"{base}/Messages.json"
        self.calls_url = f"{base}/Calls.json"
        token = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {token}",
            "Content-Type": FORM,
            "Accept": "application/json",
        }
        self._get_headers = {k: v for k, v in self._headers.items() if k != "Content-Type"}

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioProvider:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ValueError("Twilio provider needs MIMAMORI_TWILIO_ACCOUNT_SID and _AUTH_TOKEN")
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_url=settings.twilio_api_url,
            http_client_name=settings.twilio_http_client,
            connections=settings.dispatch_concurrency + 16,
            read_timeout=settings.twilio_read_timeout_seconds,
        )

    def sms_form(
        self, *, to: str, body: str, status_callback: str, sender: Sender | None = None
    ) -> list[tuple[str, str]]:
        """CreateMessage's fields, spelt as Twilio's OpenAPI description spells them. From
        the organization's own ``sender`` when it has one, else the installation's."""
        service = sender.messaging_service_sid if sender else self.messaging_service_sid
        number = sender.from_number if sender else self.from_number
        field = ("MessagingServiceSid", service) if service else ("From", number or "")
        return [("To", to), ("Body", body), field, ("StatusCallback", status_callback)]

    def call_form(
        self, *, to: str, twiml_url: str, status_callback: str, sender: Sender | None = None
    ) -> list[tuple[str, str]]:
        """CreateCall's fields; StatusCallbackEvent is repeated, once per event."""
        return [
            ("To", to),
            ("From", self._call_from(sender) or ""),
            ("Url", twiml_url),
            ("Method", "POST"),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
            *(("StatusCallbackEvent", event) for event in CALL_STATUS_EVENTS),
            ("MachineDetection", self.machine_detection),
            ("Timeout", str(CALL_RING_TIMEOUT_SECONDS)),
        ]

    def _call_from(self, sender: Sender | None) -> str | None:
        return (sender.from_number if sender else None) or self.from_number

    async def send_sms(
        self, *, to: str, body: str, status_callback: str, sender: Sender | None = None
    ) -> SendResult:
        form = self.sms_form(to=to, body=body, status_callback=status_callback, sender=sender)
        return await self._create("sms", to, self.messages_url, form)

    async def create_message(self, form: list[tuple[str, str]], *, to: str) -> SendResult:
        """A message with fields of the caller's own (WhatsApp: ``whatsapp:`` addresses and
        a template's ``ContentSid``), through the same request and error handling."""
        return await self._create("message", to, self.messages_url, form)

    async def place_call(
        self, *, to: str, twiml_url: str, status_callback: str, sender: Sender | None = None
    ) -> SendResult:
        if not self._call_from(sender):
            # A Messaging Service cannot place calls; the channel is unusable as configured.
            raise PermanentSendError(None, "no MIMAMORI_TWILIO_FROM_NUMBER to place calls from")
        form = self.call_form(
            to=to, twiml_url=twiml_url, status_callback=status_callback, sender=sender
        )
        return await self._create("call", to, self.calls_url, form)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        form: list[tuple[str, str]] | None = None,
        params: dict[str, object] | None = None,
    ) -> Response:
        """One request; a transport failure becomes a classified ``TransientSendError``."""
        try:
            if form is None:
                return await self.http_client.request(
                    method, url, params=params, headers=self._get_headers
                )
            return await self.http_client.request(
                method, url, data=urlencode(form).encode(), headers=self._headers
            )
        except httpx.TransportError as exc:
            raise classify_transport_error(exc) from exc

    async def _create(
        self, kind: str, to: str, url: str, form: list[tuple[str, str]]
    ) -> SendResult:
        """POST one create and turn every failure into a classified ``SendError``."""
        try:
            response = await self._request("POST", url, form=form)
        except TransientSendError as error:
            _fail(kind, to, error, error)
        if response.status_code >= 400:
            _fail(kind, to, _classify_error_response(response), None)
        try:
            created = json.loads(response.text)
            sid = created.get("sid") if isinstance(created, dict) else None
        except ValueError as exc:
            # Twilio accepted the request, but we cannot learn the SID.
            reason = f"unreadable success response: {exc}"
            _fail(kind, to, TransientSendError(reason, ambiguous=True), exc)
        if not sid:
            _fail(
                kind,
                to,
                TransientSendError("Twilio accepted the request without a SID", ambiguous=True),
                None,
            )
        status = str(created.get("status") or "queued")
        # DEBUG: the dispatcher logs every send it records, with its SID, at INFO already.
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("twilio %s %s to %s: %s", kind, sid, mask_phone(to), status)
        return SendResult(sid=sid, status=status)

    async def sent_to(
        self, *, channel: str, to: str, since: datetime, senders: Collection[str] = ()
    ) -> list[SentRecord]:
        """Twilio's Message or Call list resource, filtered by ``To``, newest first; only
        what came from one of our senders: the installation's, or any of ``senders`` (the
        organizations' own numbers and Messaging Services).

        Only ``To`` is sent as a filter (and ``From`` for calls when the installation's
        number is the only one: else ``from`` is checked here). ``DateSent`` and
        ``StartTime`` filter by the day a message was sent or a call started, which a
        message still queued or a call still ringing does not have yet: exactly the ones
        an uncertain send may be. The time since the claim is checked here instead, on
        ``date_created``, page by page until the records are older than it.
        """
        url = self.messages_url if channel == "sms" else self.calls_url
        key = "messages" if channel == "sms" else "calls"
        params: dict[str, object] = {"To": to, "PageSize": RECONCILE_PAGE_SIZE}
        ours = frozenset(senders) - {""}
        if channel != "sms" and self.from_number and not ours:
            params["From"] = self.from_number
        earliest = since - RECONCILE_CLOCK_SKEW
        found: list[SentRecord] = []
        next_url: str | None = url
        for _page in range(RECONCILE_MAX_PAGES):
            if next_url is None:
                break
            try:
                response = await self._request("GET", next_url, params=params)
            except TransientSendError as exc:
                raise ReconcileUnavailable(str(exc)) from exc
            if response.status_code != 200:
                raise ReconcileUnavailable(f"HTTP {response.status_code} listing {key}")
            try:
                page = json.loads(response.text)
                items = page[key]
            except (ValueError, KeyError, TypeError) as exc:
                raise ReconcileUnavailable(f"unreadable {key} list: {exc}") from exc
            older = False
            for item in items:
                record = _record_of(item, channel)
                if record is None:
                    continue
                if record.created_at is not None and record.created_at < earliest:
                    older = True
                    continue
                if (channel == "sms" or ours) and not self._our_sender(item, channel, ours):
                    continue
                found.append(record)
            following = page.get("next_page_uri")
            if older or not following:
                break
            next_url, params = _absolute(following), {}
        return found

    def _our_sender(self, item: dict[str, Any], channel: str, ours: frozenset[str]) -> bool:
        """Whether a record was sent by us: from the installation's sender, or from an
        organization's own number or Messaging Service (``ours``)."""
        service, number = item.get("messaging_service_sid"), item.get("from")
        if (service and service in ours) or (number and number in ours):
            return True
        if channel == "sms" and self.messaging_service_sid:
            return service == self.messaging_service_sid
        return number == self.from_number

    async def aclose(self) -> None:
        await self.http_client.aclose()  # type: ignore[attr-defined]


def _absolute(uri: str) -> str:
    return uri if uri.startswith("http") else TWILIO_API_BASE + uri


def _parse_date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _record_of(item: object, channel: str) -> SentRecord | None:
    if not isinstance(item, dict) or not item.get("sid"):
        return None
    return SentRecord(
        sid=str(item["sid"]),
        status=str(item.get("status") or "queued"),
        to=str(item.get("to") or ""),
        created_at=_parse_date(item.get("date_created")),
        body=item.get("body") if channel == "sms" else None,
    )


def _fail(kind: str, to: str, error: SendError, cause: BaseException | None) -> NoReturn:
    logger.warning("twilio %s to %s failed: %r", kind, mask_phone(to), error)
    raise error from cause


def _classify_error_response(response: Response) -> SendError:
    """Twilio's error body (classic ``{code, message}`` or RFC 9457 ``{code, detail}``)."""
    status = response.status_code
    retry_after = None
    if response.headers is not None:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    code: int | None = None
    message = response.text[:200]
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw = body.get("code")
        code = raw if isinstance(raw, int) and raw != status else None
        message = str(body.get("message") or body.get("detail") or body.get("title") or message)
    return classify_http_error(status=status, code=code, message=message, retry_after=retry_after)
