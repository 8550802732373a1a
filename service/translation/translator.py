"""The machine-translation interface itself: the protocol and its result type.

Its own module so that the implementations (``deepl_provider.py``, ``google_provider.py``)
and the registry that chooses among them (``provider.py``) do not import each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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
