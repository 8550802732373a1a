"""Checking ``X-Twilio-Signature`` on every webhook.

Twilio signs the exact URL it requested plus the form fields. We rebuild that URL from
``MIMAMORI_PUBLIC_URL``, never from ``Host`` or ``X-Forwarded-*``: those are whatever
the reverse proxy (or an attacker talking to us directly) says, and trusting them would
let a request signed for another site validate here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from twilio.request_validator import RequestValidator

from service.config import Settings, get_settings

SIGNATURE_HEADER = "X-Twilio-Signature"


def sign(url: str, params: Mapping[str, str], token: str) -> str:
    """The signature Twilio would send, for ``mimamori simulate`` and tests."""
    return RequestValidator(token).compute_signature(url, dict(params))


def signed_url(settings: Settings, request: Request) -> str:
    """The URL Twilio requested, as seen from outside: public URL + path + query."""
    return signed_url_for_scope(settings, request.scope)


def signed_url_for_scope(settings: Settings, scope: Mapping[str, Any]) -> str:
    """``signed_url`` from the ASGI scope.

    Behind a proxy that strips a path prefix, ``MIMAMORI_PUBLIC_URL`` must include that
    prefix; an ASGI ``root_path`` is removed from the path so it is not counted twice.
    """
    url = settings.public_url + route_path(scope)
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        url += "?" + query
    return url


def route_path(scope: Mapping[str, Any]) -> str:
    """The request's path without the ASGI ``root_path``."""
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :]
    return path


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=detail)


async def verified_twilio_form(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> dict[str, str]:
    """Return the webhook's form fields, or refuse with 403 if Twilio did not sign them.

    Every configured token is tried, so webhooks keep validating while the Auth Token is
    rotated (``MIMAMORI_TWILIO_PREVIOUS_AUTH_TOKENS``). Unknown fields are kept: they are
    part of the signature and the handlers ignore what they do not know.
    """
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise _forbidden("missing X-Twilio-Signature")
    form = await request.form()
    if any(not isinstance(value, str) for _, value in form.multi_items()):
        # Twilio posts url-encoded text; a file upload is not from Twilio.
        raise _forbidden("unexpected file in webhook form")
    url = signed_url(settings, request)
    # The FormData itself is passed so repeated fields are signed the way Twilio does.
    if not any(
        RequestValidator(token).validate(url, form, signature)
        for token in settings.webhook_auth_tokens()
    ):
        raise _forbidden("invalid X-Twilio-Signature")
    # PostgreSQL cannot store a NUL character in text or JSON. Refusing the webhook would
    # lose a resident's reply, so after the signature is checked a NUL is shown as U+FFFD.
    return {
        key.replace("\x00", NUL_STAND_IN): str(value).replace("\x00", NUL_STAND_IN)
        for key, value in form.items()
    }


#: What a NUL character in a webhook field is stored as.
NUL_STAND_IN = "\ufffd"

TwilioForm = Annotated[dict[str, str], Depends(verified_twilio_form)]
