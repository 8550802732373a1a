"""Request limits enforced while the body is read, and NUL characters refused at the door.

Checking a size after ``await request.body()`` is too late: by then a chunked 50 MB body
(no Content-Length) is already in memory. ``BodyLimitMiddleware`` counts the bytes of each
``http.request`` message as the application pulls it and stops at the limit for the route.

PostgreSQL cannot store a NUL character in text, so a NUL in a search, a name or a note
would fail deep in the database as a 500. ``NulRejectMiddleware`` refuses it up front with
a 422 that names the field, for every query string, JSON body and form outside Twilio's
webhooks (a resident's reply is never refused; see ``service.telephony``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.jma.parser import MAX_DOCUMENT_BYTES

# Limits in bytes. JSON bodies are small: a resident, a schedule, a policy.
MAX_JSON_BODY = 1024 * 1024
# Twilio's webhook forms are a few kilobytes (an SMS is at most 1,600 characters).
MAX_TWILIO_BODY = 64 * 1024
# A JMA bulletin: the parser refuses larger documents anyway.
MAX_JMA_BODY = MAX_DOCUMENT_BYTES
# CSV uploads: the API takes files up to 50 MB (service.registry.views), plus the multipart
# envelope; the dashboard's preview form carries up to 20 MB packed (service.web.views).
MAX_UPLOAD_BODY = 51 * 1024 * 1024
MAX_IMPORT_FORM_BODY = 40 * 1024 * 1024

JMA_PUSH_PATH = "/api/v1/jma/bulletins"


def body_limit(path: str, content_type: str) -> int:
    """The largest body a request to ``path`` with this content type may send."""
    if path.startswith("/twilio/"):
        return MAX_TWILIO_BODY
    if path == JMA_PUSH_PATH:
        return MAX_JMA_BODY
    if content_type == "multipart/form-data":
        return MAX_UPLOAD_BODY
    if content_type == "application/x-www-form-urlencoded" and path.startswith("/registry/import"):
        return MAX_IMPORT_FORM_BODY
    return MAX_JSON_BODY


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException, so FastAPI's body parsing passes it on."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"the request body is larger than {limit // (1024 * 1024)} MB"
    return f"the request body is larger than {limit // 1024} KB"


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _media_type(scope: Scope) -> str:
    return _header(scope, b"content-type").split(";", 1)[0].strip().lower()


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for a body over its route's limit: at once when Content-Length says so, else as
    soon as the bytes read pass it (chunked bodies have no Content-Length)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"], _media_type(scope))
        declared = _header(scope, b"content-length").strip()
        if declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, {"detail": too_large_message(limit)})
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send_json(send, 413, {"detail": exc.detail})


# --- NUL characters ---------------------------------------------------------------------------

NUL_MESSAGE = "contains a NUL character (U+0000), which is not allowed"


def _nul_in_pairs(pairs: list[tuple[str, str]]) -> str | None:
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "\\u0000")
    return None


def _nul_paths(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield (*loc, key.replace("\x00", "\\u0000"))
            yield from _nul_paths(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, (*loc, index))


#: A lone surrogate (``"\\ud800"``) is valid JSON but not text: UTF-8 cannot encode it, so the
#: database, and even a 422 that echoes the value, would fail as a 500.
SURROGATE_MESSAGE = "contains a lone surrogate (U+D800 to U+DFFF), which is not text"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_paths(
    value: Any, loc: tuple[str | int, ...] = ()
) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if _SURROGATE.search(value):
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                yield (*loc, key.encode("utf-8", "backslashreplace").decode("utf-8"))
            yield from _surrogate_paths(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _surrogate_paths(item, (*loc, index))


def surrogate_location(scope: Scope, body: bytes | None) -> list[str | int] | None:
    """Where a JSON body holds a lone surrogate, or None."""
    media = _media_type(scope)
    if not body or not (media == "application/json" or media.endswith("+json")):
        return None
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    found = next(_surrogate_paths(document), None)
    return None if found is None else ["body", *found]


def nul_location(scope: Scope, body: bytes | None) -> list[str | int] | None:
    """Where a NUL character is in the request (FastAPI's ``loc`` style), or None."""
    if "\x00" in scope["path"]:
        return ["path"]
    query: bytes = scope.get("query_string", b"")
    # In a URL-encoded string a NUL can only be written %00 (a literal % is %25).
    if b"%00" in query or b"\x00" in query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
        return ["query", _nul_in_pairs(pairs) or ""]
    if not body:
        return None
    media = _media_type(scope)
    if media == "application/x-www-form-urlencoded" and (b"%00" in body or b"\x00" in body):
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, encoding="utf-8")
        return ["body", _nul_in_pairs(pairs) or ""]
    if (media == "application/json" or media.endswith("+json")) and b"\\u0000" in body:
        try:
            document = json.loads(body)
        except ValueError:
            return None  # not JSON: the route's own validation says so
        found = next(_nul_paths(document), None)
        if found is not None:
            return ["body", *found]
    return None


class NulRejectMiddleware:
    """422 for a NUL character in the path, the query string, a JSON body or a form."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/twilio/"):
            await self.app(scope, receive, send)
            return
        media = _media_type(scope)
        inspect_body = media in ("application/json", "application/x-www-form-urlencoded") or (
            media.endswith("+json")
        )
        body: bytes | None = None
        if inspect_body:
            body, receive = await _buffer(receive)
        loc = nul_location(scope, body)
        if loc is not None:
            await _send_json(
                send, 422, {"detail": [{"loc": loc, "msg": NUL_MESSAGE, "type": "value_error"}]}
            )
            return
        loc = surrogate_location(scope, body)
        if loc is not None:
            detail = [{"loc": loc, "msg": SURROGATE_MESSAGE, "type": "value_error"}]
            await _send_json(send, 422, {"detail": detail})
            return
        await self.app(scope, receive, send)


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (the limit middleware outside bounds it) and replay it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
