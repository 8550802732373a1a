"""LINE through its Messaging API, with the official SDK (``line-bot-sdk`` v3).

Push messages go through the SDK's async client (aiohttp underneath). Each carries the
outbox row's id as LINE's retry key (``X-Line-Retry-Key``): LINE accepts one request per
key, and answers a repeat with 409, so a retry after a timeout can never send twice. That
is why nothing here is ever ambiguous: a send whose answer was lost is simply sent again.

A push that LINE refuses (400: not a user of this channel; 403; 404) fails for good, and
the check-in moves on to its next channel; 429 and 5xx are retried. A user who blocks the
account is told to us by the ``unfollow`` webhook (``line_webhook``), which unlinks them.
"""

from __future__ import annotations

import logging
import uuid

import aiohttp
from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    PushMessageRequest,
    TextMessage,
)
from linebot.v3.messaging.exceptions import ApiException

from service.config import Settings
from service.telephony.channel import SendResult
from service.telephony.errors import PermanentSendError, TransientSendError, parse_retry_after

log = logging.getLogger(__name__)

LINE_TEXT_LIMIT = 5000


def retry_key(key: str) -> str:
    """LINE wants a UUID; the outbox row's id is one."""
    return str(uuid.UUID(key))


def classify_line_error(status: int, reason: str, retry_after: float | None) -> Exception:
    if status == 429 or status >= 500:
        return TransientSendError(f"LINE HTTP {status}: {reason}", retry_after=retry_after)
    return PermanentSendError(None, f"LINE HTTP {status}: {reason}")


class LineChannel:
    name = "line"

    def __init__(self, *, access_token: str, api_url: str = "https://api.line.me") -> None:
        self.configuration = Configuration(host=api_url.rstrip("/"), access_token=access_token)
        self._client: AsyncApiClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LineChannel:
        assert settings.line_channel_access_token
        return cls(access_token=settings.line_channel_access_token, api_url=settings.line_api_url)

    def _api(self) -> AsyncMessagingApi:
        # Made on the dispatcher's event loop, on first use (aiohttp sessions belong to one).
        if self._client is None:
            self._client = AsyncApiClient(self.configuration)
        return AsyncMessagingApi(self._client)

    async def send_text(
        self, *, to: str, body: str, status_callback: str, opening: bool, key: str
    ) -> SendResult:
        request = PushMessageRequest(to=to, messages=[TextMessage(text=body[:LINE_TEXT_LIMIT])])
        try:
            response = await self._api().push_message_with_http_info(
                request, x_line_retry_key=retry_key(key)
            )
        except ApiException as exc:
            if exc.status == 409:  # this retry key was accepted before: sent once, not again
                return SendResult(sid=f"line:{key}", status="sent")
            headers = exc.headers or {}
            raise classify_line_error(
                int(exc.status or 0),
                str(exc.reason or ""),
                parse_retry_after(headers.get("Retry-After")),
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Never ambiguous: the retry key makes the resend a no-op if LINE had it.
            raise TransientSendError(f"LINE: {type(exc).__name__}: {exc}") from exc
        sent = response.data.sent_messages if response.data else []
        sid = f"line:{sent[0].id}" if sent else f"line:{key}"
        return SendResult(sid=sid, status="sent")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
