"""The LINE webhook (``POST /line/webhook``) and the API that issues a resident's LINE
link code.

The webhook is checked by the SDK's ``WebhookParser``: ``X-Line-Signature`` must be the
HMAC-SHA256 of the raw body under the channel secret, or the request gets 403 and nothing
is stored or changed, as a bad ``X-Twilio-Signature`` does. A LINE user id is believed only
from such a request.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.webhook import WebhookParser
from linebot.v3.webhooks import (
    MessageEvent,
    TextMessageContent,
    UnfollowEvent,
    UserSource,
)
from sqlmodel import Session

from service.auth.deps import Coordinator, actor_for
from service.clock import get_clock
from service.config import get_settings
from service.db import SessionDep, get_engine
from service.registry import service as registry
from service.registry.channels import LineLinkCodePublic
from service.telephony import app_inbound

log = logging.getLogger(__name__)
webhook_router = APIRouter(prefix="/line", tags=["line webhook"])
api_router = APIRouter(tags=["residents"])


@webhook_router.post(
    "/webhook",
    responses={
        400: {"description": "Signed, but not a LINE webhook body."},
        403: {"description": "X-Line-Signature is missing or wrong."},
        404: {"description": "LINE is not configured on this installation."},
    },
)
async def line_webhook(
    request: Request, x_line_signature: Annotated[str | None, Header()] = None
) -> Response:
    secret = get_settings().line_channel_secret
    if not secret:
        raise HTTPException(status_code=404, detail="LINE is not configured")
    if not x_line_signature:
        raise HTTPException(status_code=403, detail="missing X-Line-Signature")
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        events = WebhookParser(secret).parse(body, x_line_signature)
    except InvalidSignatureError:
        log.warning("LINE webhook with a bad signature refused")
        raise HTTPException(status_code=403, detail="bad X-Line-Signature") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise HTTPException(status_code=400, detail="unreadable LINE webhook body") from exc
    if events:
        # The SDK gives one event per raw event, in order; the raw one is kept for a message
        # the SDK could not read (a new kind): it came from someone all the same.
        raw = json.loads(body)["events"]
        await run_in_threadpool(_handle_events, list(events), list(raw))
    return Response(status_code=200)


def _unread_message(raw: object) -> tuple[str, str, str] | None:
    """(user id, message id, kind) of a user's message event the SDK did not read."""
    if not isinstance(raw, dict) or raw.get("type") != "message":
        return None
    source, message = raw.get("source"), raw.get("message")
    if not isinstance(source, dict) or not isinstance(message, dict):
        return None
    user, message_id = source.get("userId"), message.get("id")
    if source.get("type") != "user" or not isinstance(user, str) or not user:
        return None
    if not isinstance(message_id, str | int) or not str(message_id):
        return None
    return user, str(message_id), str(message.get("type") or "message")[:32]


def _handle_events(events: list[object], raw: list[object] | None = None) -> None:
    """One transaction for the request's events: LINE retries the whole request if it
    fails, and each stored message is recognised by its id on a retry."""
    now = get_clock().now()
    raw = raw if raw is not None and len(raw) == len(events) else [None] * len(events)
    with Session(get_engine()) as session:
        for event, raw_event in zip(events, raw, strict=True):
            unread = None if isinstance(event, MessageEvent) else _unread_message(raw_event)
            if unread is not None:
                user, message_id, kind = unread
                app_inbound.line_text(
                    session,
                    user_id=user,
                    message_id=message_id,
                    text=f"[{kind}]",
                    now=now,
                    extra={"line_type": kind},
                )
                continue
            source = getattr(event, "source", None)
            if not isinstance(source, UserSource) or not source.user_id:
                continue  # groups and rooms: not a resident's own words
            if isinstance(event, MessageEvent) and isinstance(event.message, TextMessageContent):
                app_inbound.line_text(
                    session,
                    user_id=source.user_id,
                    message_id=event.message.id,
                    text=event.message.text,
                    now=now,
                )
            elif isinstance(event, MessageEvent) and event.message is not None:
                # A sticker, a photo, a voice message, a location: the resident meant
                # something. Kept for staff and read as unclear; it never closes a check-in.
                kind = str(getattr(event.message, "type", "") or "message")
                app_inbound.line_text(
                    session,
                    user_id=source.user_id,
                    message_id=event.message.id,
                    text=f"[{kind}]",
                    now=now,
                    extra=_content_detail(event.message),
                )
            elif isinstance(event, UnfollowEvent):
                app_inbound.line_unfollow(session, user_id=source.user_id, now=now)
        session.commit()


_DETAIL_FIELDS = ("type", "package_id", "sticker_id", "keywords", "text", "file_name")
_LOCATION_FIELDS = ("title", "address", "latitude", "longitude")


def _content_detail(message: object) -> dict[str, Any]:
    """What a message that is not text carried, for staff (a location's place in full)."""
    names = _DETAIL_FIELDS + _LOCATION_FIELDS
    return {
        f"line_{name}": value
        for name in names
        if (value := getattr(message, name, None)) is not None
        and isinstance(value, str | int | float | list)
    }


@api_router.post(
    "/residents/{resident_id}/line-link-code", response_model=LineLinkCodePublic, status_code=201
)
def issue_line_link_code(
    session: SessionDep, user: Coordinator, resident_id: uuid.UUID
) -> LineLinkCodePublic:
    """A one-time code for the resident to send to the organization's LINE account from
    their own LINE: it links that account to them (valid for a week, once)."""
    actor = actor_for(user)
    resident = registry.get_resident(
        session=session, organization_id=user.organization_id, resident_id=resident_id, actor=actor
    )
    link = app_inbound.new_line_link_code(
        session,
        organization_id=user.organization_id,
        resident_id=resident.id,
        actor=actor,
        now=get_clock().now(),
    )
    session.commit()
    return LineLinkCodePublic(code=link.code, expires_at=link.expires_at)
