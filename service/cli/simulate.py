"""``mimamori simulate``: post signed Twilio-style webhooks to a running server."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import _, fail, say
from service.config import get_settings
from service.texts import N_

simulate_app = typer.Typer(
    help=_("Post signed Twilio-style webhooks to a running server."), no_args_is_help=True
)
_URL_HELP = _("Server (default: MIMAMORI_PUBLIC_URL).")


def _post_signed(path: str, params: dict[str, str], url: str | None) -> str:
    import httpx

    from service.telephony.signature import sign

    settings = get_settings()
    signed_for = f"{settings.public_url}{path}"
    target = f"{(url or settings.public_url).rstrip('/')}{path}"
    signature = sign(signed_for, params, settings.webhook_auth_tokens()[0])
    response = httpx.post(
        target, data=params, headers={"X-Twilio-Signature": signature}, timeout=15
    )
    if response.status_code >= 400:
        fail(
            N_(
                "%(path)s: the server answered HTTP %(status)s: %(body)s",
                path=path,
                status=response.status_code,
                body=response.text,
            )
        )
    return response.text


def _twiml_text(xml: str) -> str:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(xml)
    # A <Play> (a recorded prompt, e.g. in Nepali) is shown as its URL, in the spoken order.
    return " ".join(
        (el.text or "").strip() if el.tag != "Play" else f"[audio {(el.text or '').strip()}]"
        for el in root.iter()
        if el.tag in ("Message", "Say", "Play")
    )


@simulate_app.command(
    "sms", help=_("Post a signed inbound SMS, as Twilio would, and print the reply.")
)
def simulate_sms(
    text: Annotated[str, typer.Argument(help=_("The message text."))],
    from_: Annotated[str, typer.Option("--from", help=_("Sender's number."))],
    to: Annotated[str, typer.Option(help=_("Our number."))] = "+815000000000",
    url: Annotated[str | None, typer.Option(help=_URL_HELP)] = None,
) -> None:
    import uuid

    from service.registry.phones import PhoneError, parse_phone

    try:
        sender = parse_phone(from_).e164
    except PhoneError as exc:
        fail(N_("--from: %(reason)s", reason=exc.text))
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": to,
        "Body": text,
        "NumMedia": "0",
    }
    reply = _twiml_text(_post_signed("/twilio/sms", params, url))
    say(N_("Reply: %(reply)s", reply=reply) if reply else N_("No reply."))


@simulate_app.command(
    "call",
    help=_(
        "Answer our latest call to a number: post the signed call webhooks, with keypad digits."
    ),
)
def simulate_call(
    to: Annotated[str, typer.Option("--to", help=_("The resident's number we called."))],
    digits: Annotated[str, typer.Option(help=_("Keys pressed (empty for none)."))] = "1",
    machine: Annotated[
        bool, typer.Option("--machine", help=_("An answering machine answers."))
    ] = False,
    url: Annotated[str | None, typer.Option(help=_URL_HELP)] = None,
) -> None:
    from sqlalchemy import select as sa_select
    from sqlmodel import Session

    from service.db import get_engine
    from service.registry.phones import PhoneError, parse_phone
    from service.telephony.models import OutboxMessage

    try:
        number = parse_phone(to).e164
    except PhoneError as exc:
        fail(N_("--to: %(reason)s", reason=exc.text))
    with Session(get_engine()) as session:
        call = (
            session.execute(
                sa_select(OutboxMessage)
                .where(
                    OutboxMessage.to_phone == number,
                    OutboxMessage.channel == "call",
                    OutboxMessage.sid.is_not(None),  # type: ignore[union-attr]
                )
                .order_by(OutboxMessage.created_at.desc())  # type: ignore[attr-defined]
                .limit(1)
            )
            .scalars()
            .first()
        )
    if call is None:
        fail(N_("No call has been placed to %(number)s yet.", number=to))
    query = f"?attempt={call.id}"
    base = {
        "CallSid": call.sid or "",
        "AccountSid": "AC" + "0" * 32,
        "To": number,
        "From": "+815000000000",
        "Direction": "outbound-api",
    }
    answered = {
        **base,
        "CallStatus": "in-progress",
        "AnsweredBy": "machine_end_beep" if machine else "human",
    }
    spoken = _twiml_text(_post_signed("/twilio/voice" + query, answered, url))
    say(N_("Call: %(spoken)s", spoken=spoken))
    if not machine:
        gathered = {**base, "CallStatus": "in-progress", "Digits": digits}
        result = _post_signed("/twilio/voice/gather" + query, gathered, url)
        say(
            N_("After keys %(digits)s: %(spoken)s", digits=repr(digits), spoken=_twiml_text(result))
        )
    _post_signed("/twilio/voice/status" + query, {**base, "CallStatus": "completed"}, url)


@simulate_app.command("status", help=_("Post a signed delivery status callback, as Twilio would."))
def simulate_status(
    sid: Annotated[str, typer.Option(help=_("The message SID."))],
    status: Annotated[str, typer.Argument(help=_("queued, sent, delivered, undelivered, failed"))],
    error_code: Annotated[str | None, typer.Option(help=_("Twilio ErrorCode, e.g. 30003."))] = None,
    url: Annotated[str | None, typer.Option(help=_URL_HELP)] = None,
) -> None:
    params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32}
    params["MessageStatus"] = status
    if error_code:
        params["ErrorCode"] = error_code
    _post_signed("/twilio/status", params, url)
    say(N_("Posted %(status)s for %(sid)s.", status=status, sid=sid))
