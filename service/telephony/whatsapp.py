"""WhatsApp through Twilio: the same Messages API as SMS, with ``whatsapp:`` addresses.

A message that may start a conversation (a check-in: the resident may not have written in
the last 24 hours, outside WhatsApp's session window) goes as the approved template
(``ContentSid``, with the text as its one variable) when one is configured; a message
inside a session (the answer to a reply) is free text. Without a template a check-in goes
as free text, and outside a session Twilio refuses it (63016): a permanent failure, so the
check-in falls back to its next channel at once. Status callbacks come to the same
``/twilio/status`` as SMS: ``undelivered`` or ``failed`` fails the attempt the same way.
"""

from __future__ import annotations

import json

from service.config import Settings
from service.telephony.channel import Sender, SendResult, TelephonyProvider
from service.telephony.messaging import WHATSAPP_PREFIX


def whatsapp_address(number: str) -> str:
    return number if number.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + number


def whatsapp_form(
    *,
    to: str,
    from_number: str,
    body: str,
    status_callback: str,
    content_sid: str | None,
) -> list[tuple[str, str]]:
    """CreateMessage's fields for WhatsApp: the template and its variable, or the body."""
    form = [("To", whatsapp_address(to)), ("From", whatsapp_address(from_number))]
    if content_sid:
        form += [("ContentSid", content_sid), ("ContentVariables", json.dumps({"1": body}))]
    else:
        form.append(("Body", body))
    form.append(("StatusCallback", status_callback))
    return form


class WhatsAppChannel:
    name = "whatsapp"

    def __init__(self, provider: TelephonyProvider, settings: Settings) -> None:
        assert settings.whatsapp_from_number
        self.provider = provider
        self.from_number = settings.whatsapp_from_number
        self.content_sid = settings.whatsapp_checkin_content_sid

    async def send_text(
        self, *, to: str, body: str, status_callback: str, opening: bool, key: str
    ) -> SendResult:
        content_sid = self.content_sid if opening else None
        create = getattr(self.provider, "create_message", None)
        if create is not None:  # Twilio: the fields as its API spells them
            form = whatsapp_form(
                to=to,
                from_number=self.from_number,
                body=body,
                status_callback=status_callback,
                content_sid=content_sid,
            )
            return await create(form, to=to)
        # The console (and any provider without raw messages) records it as a message.
        return await self.provider.send_sms(
            to=whatsapp_address(to),
            body=body,
            status_callback=status_callback,
            sender=Sender(from_number=whatsapp_address(self.from_number)),
        )

    async def aclose(self) -> None:
        return None  # the provider's client is closed with the provider
