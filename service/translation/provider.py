"""The machine-translation interface, and the choice of implementation.

Synchronous on purpose: translation runs in a scheduler job (a worker thread) and in the
dashboard's answer preview (a thread-pool route), a few short texts at a time, so the
concurrency the outbox dispatcher needs would buy nothing here.

A translator receives only the texts to translate: never a name, a phone number or a case
note (the callers in ``service.translation.service`` pass the reply or answer text alone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from service.config import Settings

# The interface lives in translator.py (the implementations import it from there).
from service.translation.translator import TranslationResult as TranslationResult
from service.translation.translator import Translator as Translator

log = logging.getLogger(__name__)


TranslatorFactory = Callable[[Settings], Translator]


def _deepl_from_settings(settings: Settings) -> Translator:
    # Imported here: an implementation loads its HTTP client only when it is chosen.
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
