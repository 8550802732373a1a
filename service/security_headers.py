"""Security headers on every response, the API's and the webhooks' as well as the dashboard's.

The dashboard sets its own stricter set (``service.web.core.SECURITY_HEADERS``); headers a
response already has are kept. HSTS is sent only when the public URL is https: over plain
http a browser ignores it, and on a development machine it would pin localhost to https.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Two years, the value browsers' preload lists ask for; subdomains of a council's service
# host are its own.
HSTS = "max-age=63072000; includeSubDomains"

BASELINE = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, public_url: str) -> None:
        self.app = app
        self.headers = dict(BASELINE)
        if public_url.lower().startswith("https://"):
            self.headers["Strict-Transport-Security"] = HSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
                # API answers carry residents' data: no shared or browser cache keeps them.
                if api and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, add_headers)
