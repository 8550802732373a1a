"""The translator the web process uses (the API and the dashboard's answer preview)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends

from service.config import Settings, get_settings
from service.translation.provider import Translator, make_translator

_lock = threading.Lock()
_built: tuple[Settings, Translator | None] | None = None


def get_translator() -> Translator | None:
    """A FastAPI dependency: the configured translator, or None when translation is off.

    Built once per settings object (tests that change the settings get a fresh one)."""
    global _built
    settings = get_settings()
    with _lock:
        if _built is None or _built[0] is not settings:
            _built = (settings, make_translator(settings))
        return _built[1]


TranslatorDep = Annotated[Translator | None, Depends(get_translator)]
