"""An httpx transport for the twilio SDK (``MIMAMORI_TWILIO_HTTP_CLIENT=httpx``).

The default transport is aiohttp (``aiohttp_client.py``): measured on the same requests,
httpx spent several times its CPU per request, most of it in its connection pool. This one
is kept for deployments that need httpx (a proxy set up through its environment variables,
say), with explicit timeouts; tests mock its wire with respx.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

TWILIO_API_BASE = "https://api.twilio.com"


def rewrite_api_url(url: str, api_base_url: str) -> str:
    """Point a URL on Twilio's API at ``api_base_url`` (a Twilio-compatible server); other
    hosts pass through. Shared by both HTTP clients."""
    if api_base_url == TWILIO_API_BASE:
        return url
    if url == TWILIO_API_BASE or url.startswith(TWILIO_API_BASE + "/"):
        return api_base_url + url[len(TWILIO_API_BASE) :]
    return url

# The dispatcher runs up to ~100 sends at once. They are spread over several small pools:
# httpcore's bookkeeping per request grows with the size of one pool, and with a single pool
# of 100 connections it, not Twilio, becomes what limits a round (measured in
# tests/bench/bench_telephony.py).
DEFAULT_POOLS = 8
DEFAULT_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16)

# A long read timeout on purpose: a read timeout is an *ambiguous* failure (Twilio may
# have created the message), which is not resent, so it must be rare. Connecting and
# waiting for a pooled connection fail fast because they are safe to retry.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=10.0)

logger = logging.getLogger(__name__)

_captured: ContextVar[list[Response] | None] = ContextVar("twilio_captured_responses", default=None)


@contextmanager
def capture_responses() -> Iterator[list[Response]]:
    """Collect the responses of the requests made inside the block, in this task only.

    The SDK turns an error response into an exception that drops its headers, and the
    provider needs ``Retry-After``. A context variable keeps concurrent sends sharing one
    client from seeing each other's responses.
    """
    responses: list[Response] = []
    token = _captured.set(responses)
    try:
        yield responses
    finally:
        _captured.reset(token)


class HttpxTwilioClient(AsyncHttpClient):
    """The async ``http_client`` for ``twilio.rest.Client``.

    Requests to ``https://api.twilio.com`` go to ``api_base_url`` instead, so a
    Twilio-compatible server (a mock, an edge, a test double) can stand in.
    """

    def __init__(
        self,
        *,
        api_base_url: str = TWILIO_API_BASE,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        pools: int = DEFAULT_POOLS,
        transport: httpx.AsyncBaseTransport | None = None,
        log: logging.Logger = logger,
    ) -> None:
        super().__init__(log, is_async=True, timeout=None)
        self.api_base_url = api_base_url.rstrip("/")
        self._timeout = timeout
        self._clients = [
            httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)
            for _ in range(max(1, pools))
        ]
        self._next = itertools.cycle(self._clients)

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
        """Send one request; transport errors propagate as httpx exceptions.

        The signature mirrors ``twilio.http.AsyncHttpClient.request``. The request body
        is never logged: it holds phone numbers and message text.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError(timeout)
        request_timeout = (
            self._timeout
            if timeout is None
            else httpx.Timeout(timeout, connect=self._timeout.connect, pool=self._timeout.pool)
        )
        url = self.rewrite_url(uri)
        content_type = (headers or {}).get("Content-Type", "")
        body: dict[str, object]
        if isinstance(data, bytes | str):
            body = {"content": data}  # a form the provider encoded itself
        elif "json" in content_type:
            body = {"json": data}
        else:
            body = {"data": data}
        response = await next(self._next).request(
            method.upper(),
            url,
            params=params,  # type: ignore[arg-type]
            headers=headers,
            auth=auth,
            timeout=request_timeout,
            follow_redirects=allow_redirects,
            **body,  # type: ignore[arg-type]
        )
        logger.debug(
            "twilio api %s %s -> %s",
            method.upper(),
            response.request.url.path,
            response.status_code,
        )
        result = Response(response.status_code, response.text, response.headers)
        captured = _captured.get()
        if captured is not None:
            captured.append(result)
        return result

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def __aenter__(self) -> HttpxTwilioClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
