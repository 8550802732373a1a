"""The aiohttp transport to Twilio's REST API: the dispatcher's default.

Measured against a tuned httpx on the same requests (``tests/bench/bench_http_clients.py``),
aiohttp spends a fraction of the CPU per request; in a disaster the dispatcher is bound by
CPU, not by Twilio. It implements the twilio SDK's ``AsyncHttpClient`` interface, so the
provider can hand it form bodies of its own or the SDK's, and tests mock its wire with
aioresponses.

Its failures are classified here, by when they happened: before the request was fully
written (connect errors and timeouts, waiting for a pooled connection) Twilio cannot have
acted on it, so a retry is safe; after it (a read timeout, a dropped connection) Twilio may
have created the message, so the send is *ambiguous* and is reconciled.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from service.telephony.errors import TransientSendError
from service.telephony.httpx_client import TWILIO_API_BASE, rewrite_api_url

# A long read timeout on purpose: a read timeout is ambiguous (Twilio may have created the
# message) and costs a reconciliation, so it must be rare. Connecting, and waiting for a
# pooled connection, fail fast because they are safe to retry.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0

logger = logging.getLogger(__name__)


class AiohttpTwilioClient(AsyncHttpClient):
    """One pooled ``aiohttp.ClientSession`` (made on first use, on the running loop).

    Requests to ``https://api.twilio.com`` go to ``api_base_url`` instead, so a
    Twilio-compatible server (a mock, an edge, a test double) can stand in.
    """

    def __init__(
        self,
        *,
        api_base_url: str = TWILIO_API_BASE,
        connections: int = 256,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        log: logging.Logger = logger,
    ) -> None:
        super().__init__(log, is_async=True, timeout=None)
        self.api_base_url = api_base_url.rstrip("/")
        self._connections = max(1, connections)
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=self._connections, ttl_dns_cache=300
            )
            # No cookie jar: Twilio sets none we need, and a jar costs a lookup per request.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return self._session

    def rewrite_url(self, url: str) -> str:
        """Point an SDK URL at the configured API base; other hosts pass through."""
        return rewrite_api_url(url, self.api_base_url)

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | bytes | str | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request. Transport failures raise a classified ``TransientSendError``.

        The signature mirrors ``twilio.http.AsyncHttpClient.request``; ``data`` may also be
        a form body already encoded. The body is never logged: it holds phone numbers and
        message text.
        """
        kwargs: dict[str, Any] = {"allow_redirects": allow_redirects}
        if params:
            kwargs["params"] = params
        if data is not None:
            kwargs["data"] = data
        if headers:
            kwargs["headers"] = headers
        if auth is not None:
            kwargs["auth"] = aiohttp.BasicAuth(*auth)
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(
                total=None, connect=self._timeout.connect, sock_read=timeout
            )
        try:
            async with self._client().request(
                method.upper(), self.rewrite_url(uri), **kwargs
            ) as response:
                text = await response.text()
                return Response(response.status, text, response.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise classify_aiohttp_error(exc) from exc

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def classify_aiohttp_error(exc: BaseException) -> TransientSendError:
    """A network failure is transient; it is ambiguous unless it certainly happened before
    the whole request reached Twilio."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    never_reached = isinstance(
        exc,
        (
            aiohttp.ClientConnectorError,  # DNS, refused, unreachable, TLS handshake
            aiohttp.ConnectionTimeoutError,  # connecting, or waiting for a pooled connection
            aiohttp.InvalidURL,
            aiohttp.ClientProxyConnectionError,
        ),
    )
    return TransientSendError(reason, ambiguous=not never_reached)
