"""The Twilio channel: the official SDK over our httpx client, with classified errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NoReturn

import httpx
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.response import Response
from twilio.rest import Client

from service.config import Settings
from service.privacy import mask_phone
from service.telephony.errors import (
    PermanentSendError,
    SendError,
    TransientSendError,
    classify_http_error,
    classify_transport_error,
    parse_retry_after,
)
from service.telephony.httpx_client import TWILIO_API_BASE, HttpxTwilioClient, capture_responses
from service.telephony.provider import SendResult

logger = logging.getLogger(__name__)

# Every event, so the attempt shows "ringing" and "answered" on the board, not only the end.
CALL_STATUS_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")

# Seconds to let the phone ring. Elderly residents are slow to reach the phone; much
# longer and a carrier voicemail answers instead (which AMD then has to detect).
CALL_RING_TIMEOUT_SECONDS = 45

MachineDetection = Literal["Enable", "DetectMessageEnd"]

# The SDK reads TWILIO_EDGE / TWILIO_REGION from the process environment when not given;
# an edge or region would move requests off api.twilio.com and past our URL rewrite.
# Our configuration comes only from MIMAMORI_* settings.
_NO_AMBIENT_TWILIO_ENV = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}


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
        http_client: HttpxTwilioClient | None = None,
        machine_detection: MachineDetection = "Enable",
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError(
                "Twilio needs MIMAMORI_TWILIO_FROM_NUMBER or "
                "MIMAMORI_TWILIO_MESSAGING_SERVICE_SID to send from"
            )
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.machine_detection = machine_detection
        self.http_client = http_client or HttpxTwilioClient(api_base_url=api_url)
        self.client = Client(
            account_sid,
            auth_token,
            http_client=self.http_client,
            environment=_NO_AMBIENT_TWILIO_ENV,
        )

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
        )

    async def send_sms(self, *, to: str, body: str, status_callback: str) -> SendResult:
        sender: dict[str, str] = (
            {"messaging_service_sid": self.messaging_service_sid}
            if self.messaging_service_sid
            else {"from_": self.from_number or ""}
        )
        return await self._create(
            "sms",
            to,
            lambda: self.client.messages.create_async(
                to=to, body=body, status_callback=status_callback, **sender
            ),
        )

    async def place_call(self, *, to: str, twiml_url: str, status_callback: str) -> SendResult:
        if not self.from_number:
            # A Messaging Service cannot place calls; the channel is unusable as configured.
            raise PermanentSendError(None, "no MIMAMORI_TWILIO_FROM_NUMBER to place calls from")
        return await self._create(
            "call",
            to,
            lambda: self.client.calls.create_async(
                to=to,
                from_=self.from_number,
                url=twiml_url,
                method="POST",
                status_callback=status_callback,
                status_callback_method="POST",
                status_callback_event=list(CALL_STATUS_EVENTS),
                machine_detection=self.machine_detection,
                timeout=CALL_RING_TIMEOUT_SECONDS,
            ),
        )

    async def _create(self, kind: str, to: str, create: Callable[[], Awaitable[Any]]) -> SendResult:
        """Run one SDK create and turn every failure into a classified ``SendError``."""
        with capture_responses() as responses:
            try:
                created = await create()
            except (TwilioRestException, TwilioServiceException) as exc:
                last = responses[-1] if responses else None
                _fail(kind, to, _classify_sdk_error(exc, last), exc)
            except httpx.TransportError as exc:
                _fail(kind, to, classify_transport_error(exc), exc)
            except json.JSONDecodeError as exc:
                # Only a 2xx body reaches the SDK's JSON parser unguarded: Twilio accepted
                # the request, but we cannot learn the SID.
                reason = f"unreadable success response: {exc}"
                _fail(kind, to, TransientSendError(reason, ambiguous=True), exc)
        sid = getattr(created, "sid", None)
        if not sid:
            raise TransientSendError("Twilio accepted the request without a SID", ambiguous=True)
        status = str(getattr(created, "status", None) or "queued")
        logger.info("twilio %s %s to %s: %s", kind, sid, mask_phone(to), status)
        return SendResult(sid=sid, status=status)

    async def aclose(self) -> None:
        await self.http_client.aclose()


def _fail(kind: str, to: str, error: SendError, cause: BaseException) -> NoReturn:
    logger.warning("twilio %s to %s failed: %r", kind, mask_phone(to), error)
    raise error from cause


def _classify_sdk_error(
    exc: TwilioRestException | TwilioServiceException, response: Response | None
) -> SendError:
    status = int(exc.status or 0)
    retry_after = None
    if response is not None and response.headers is not None:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    code = exc.code if isinstance(exc.code, int) and exc.code != status else None
    if isinstance(exc, TwilioRestException):
        message = str(exc.msg)
    else:
        message = str(exc.detail or exc.title)
    if status == 0:
        return TransientSendError(f"Twilio error without status: {message}")
    return classify_http_error(status=status, code=code, message=message, retry_after=retry_after)
