"""How a failed translation is classified, so the job knows whether to try again.

Like the telephony providers, a translator raises exactly one classified error and never
retries by itself (the DeepL client's own retry loop is turned off): retrying, with backoff,
is the job's business, because only the job knows how long an item may wait.

* ``TransientTranslationError``: may succeed later: HTTP 429, DeepL's 456 (character
  quota used up for the billing period), 5xx, network errors and timeouts.
* ``PermanentTranslationError``: the same request will fail the same way: a rejected key,
  a malformed request, a language the provider does not have.

The ``reason`` is shown to staff ("translation failed: …") and stored; it never contains
the text that was sent.
"""

from __future__ import annotations


class TranslationError(Exception):
    """Base class so callers can catch every classified failure in one clause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientTranslationError(TranslationError):
    """Try again later; ``retry_after`` is the provider's own hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentTranslationError(TranslationError):
    """Trying again cannot help."""


class UnsupportedLanguageError(PermanentTranslationError):
    """The provider has no such language; nothing was sent."""

    def __init__(self, reason: str, language: str) -> None:
        super().__init__(reason)
        self.language = language
