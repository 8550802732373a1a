"""The machine-translation interface, and the choice of implementation.

Synchronous on purpose: translation runs in a scheduler job (a worker thread) and in the
dashboard's answer preview (a thread-pool route), a few short texts at a time, so the
concurrency the outbox dispatcher needs would buy nothing here.

A translator receives only the texts to translate: never a name, a phone number or a case
note (the callers in ``service.translation.service`` pass the reply or answer text alone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from service.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TranslationResult:
    """One translated text, with the language the provider detected in the original.

    ``detected_language`` is the provider's code, lower case (``"vi"``, ``"zh-cn"``): it
    may name a language Mimamori has no catalog for, and staff should still see it."""

    text: str
    detected_language: str | None


class Translator(Protocol):
    """A machine-translation service.

    ``target`` and ``source`` are Mimamori language codes (``"ja"``, ``"pt_BR"``); the
    implementation maps them and raises ``UnsupportedLanguageError`` for a language it
    lacks. Results come back in the order of ``texts``. Failures raise
    ``TransientTranslationError`` or ``PermanentTranslationError`` (see ``errors.py``).
    """

    name: str
    #: How many texts one request may carry.
    max_batch: int

    def translate(
        self, texts: Sequence[str], target: str, source: str | None = None
    ) -> list[TranslationResult]: ...

    def close(self) -> None:
        """Release pooled connections."""
        ...


TranslatorFactory = Callable[[Settings], Translator]


def _deepl_from_settings(settings: Settings) -> Translator:
    # Imported here: each implementation imports this module's result type.
    from service.translation.deepl_provider import DeepLTranslator

    return DeepLTranslator.from_settings(settings)


def _google_from_settings(settings: Settings) -> Translator:
    from service.translation.google_provider import GoogleTranslator

    return GoogleTranslator.from_settings(settings)


PROVIDERS: dict[str, TranslatorFactory] = {
    "deepl": _deepl_from_settings,
    "google": _google_from_settings,
}


def make_translator(settings: Settings, name: str | None = None) -> Translator | None:
    """The configured translator, or None when translation is off ("none").

    A chosen provider without its key is refused at start-up in production (see
    ``Settings``); in development it is treated as "none", with a warning, so that a
    half-filled ``.env`` sends nothing rather than failing every item.
    """
    chosen = name or settings.translation_provider
    if chosen == "none":
        return None
    try:
        factory = PROVIDERS[chosen]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown translation provider {chosen!r} (known: {known})") from None
    missing = settings.translation_missing_settings() if name is None else []
    if missing:
        log.warning(
            "translation provider %s is chosen but %s is not set: translating nothing",
            chosen,
            " and ".join(missing),
        )
        return None
    return factory(settings)
