"""TwiML documents the webhooks answer with, as small pure functions.

Pure functions of their inputs, so the webhook does no slow work and tests can parse the
XML and assert on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

# Seconds Gather waits after the menu for a key. Generous: elderly residents may need to
# find the keypad, and hearing the menu twice already takes a while.
GATHER_TIMEOUT_SECONDS = 8
# Pause between the two readings of the menu, so they do not run into each other.
MENU_REPEAT_PAUSE_SECONDS = 1


class PromptLike(Protocol):
    """Anything that says what to speak and how, e.g. ``i18n.voice.VoicePrompt``."""

    @property
    def text(self) -> str: ...

    @property
    def say_language(self) -> str | None: ...

    @property
    def voice(self) -> str | None: ...

    @property
    def audio_url(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt built by hand; ``audio_url`` wins where Twilio has no voice for a language."""

    text: str
    say_language: str | None = None
    voice: str | None = None
    audio_url: str | None = None


def _speak(target: VoiceResponse | Gather, prompt: PromptLike) -> None:
    # A recording is used whenever there is one: it was made for a language (or a
    # quality) that text-to-speech cannot give. A prompt rendered in pieces around its
    # placeholders (``i18n.voice.VoicePrompt.parts``) plays and says them in order.
    parts = getattr(prompt, "parts", ())
    if parts:
        for part in parts:
            if part.audio_url:
                target.play(part.audio_url)
            else:
                target.say(part.text, voice=part.voice or None, language=part.say_language or None)
    elif prompt.audio_url:
        target.play(prompt.audio_url)
    else:
        target.say(prompt.text, voice=prompt.voice or None, language=prompt.say_language or None)


@lru_cache(maxsize=1024)
def sms_reply(body: str | None) -> str:
    """Reply to an inbound SMS; ``None`` acknowledges without sending anything back.

    Cached: a burst of replies gets a handful of different answers (one per reply kind,
    language and organization), each built once."""
    response = MessagingResponse()
    if body is not None:
        response.message(body)
    return str(response)


def checkin_call(
    *,
    greeting: PromptLike,
    menu: PromptLike,
    gather_action_url: str,
    no_input: PromptLike,
    gather_timeout_seconds: int = GATHER_TIMEOUT_SECONDS,
) -> str:
    """The check-in call: greeting, then the 1/2/3 menu twice while listening for a key.

    ``actionOnEmptyResult`` makes Twilio call the gather action even when no key was
    pressed, so the webhook records "answered, no key" (never safe) and answers with
    ``gather_result(no_input)``. The ``no_input`` prompt and hangup after the Gather are a
    fallback for the case where Twilio goes on past the Gather anyway; without them the
    call would end in silence.
    """
    response = VoiceResponse()
    _speak(response, greeting)
    gather = response.gather(
        input="dtmf",
        num_digits=1,
        action=gather_action_url,
        method="POST",
        action_on_empty_result=True,
        timeout=gather_timeout_seconds,
    )
    _speak(gather, menu)
    gather.pause(length=MENU_REPEAT_PAUSE_SECONDS)
    _speak(gather, menu)
    _speak(response, no_input)
    response.hangup()
    return str(response)


def gather_result(prompt: PromptLike) -> str:
    """After the keypress (or its absence): say the outcome and end the call."""
    response = VoiceResponse()
    _speak(response, prompt)
    response.hangup()
    return str(response)


def machine_message(prompt: PromptLike) -> str:
    """A short message for an answering machine. It never counts as an answer."""
    response = VoiceResponse()
    _speak(response, prompt)
    response.hangup()
    return str(response)


def hangup() -> str:
    """End the call, e.g. for a call we no longer recognise."""
    response = VoiceResponse()
    response.hangup()
    return str(response)
