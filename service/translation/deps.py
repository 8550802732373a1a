"""The translator the web process uses (the API and the dashboard's answer preview)."""

from __future__ import annotations

import logging
import threading
from typing import Annotated

from fastapi import Depends

from service.config import Settings, get_settings
from service.translation.provider import Translator, make_translator

log = logging.getLogger(__name__)
_lock = threading.Lock()
_built: tuple[Settings, Translator | None] | None = None


def get_translator() -> Translator | None:
    """A FastAPI dependency: the configured translator, or None when translation is off.

    Built once per settings object (tests that change the settings get a fresh one)."""
    global _built
    settings = get_settings()
    with _lock:
        if _built is None or _built[0] is not settings:
            try:
                translator = make_translator(settings)
            except ValueError:
                # A bad key file must not take the inbox down: answers go untranslated.
                log.exception("the translation provider could not be set up")
                translator = None
            _built = (settings, translator)
        return _built[1]


TranslatorDep = Annotated[Translator | None, Depends(get_translator)]
