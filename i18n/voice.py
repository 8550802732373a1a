"""What a check-in call says, and in which voice.

Twilio has no text-to-speech voice for some residents' languages (Nepali, Burmese,
Khmer, Sinhala). Those calls speak the Easy Japanese prompt with a Japanese voice: most
residents who have lived in Japan for a while recognise simple Japanese, and the keypad
menu (1, 2, 3) works whatever language the words were in. An operator who has recorded
prompts can do better: ``MIMAMORI_VOICE_AUDIO_MAP`` names a JSON file mapping language
and prompt to an audio URL, which the TwiML layer plays with ``<Play>`` instead of
``<Say>``::

    {"ne": {"voice.greeting": "https://example.org/audio/ne-greeting.mp3"}}
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from i18n.languages import FALLBACK_CODE, get_language, normalize_language_code
from i18n.messages import MESSAGES, VOICE_IDS, Audience
from i18n.render import render

log = logging.getLogger(__name__)

AUDIO_MAP_ENV = "MIMAMORI_VOICE_AUDIO_MAP"

AudioMap = dict[str, dict[str, str]]


class VoiceAudioMapError(ValueError):
    """The recorded-audio mapping file is unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class VoicePrompt:
    """One prompt of a call.

    ``text`` is always set and is what ``<Say>`` reads (in ``spoken_locale``, with
    ``voice`` and ``say_language``). When ``audio_url`` is set it is a recording in the
    resident's own language and should be played instead; ``text`` stays as the
    fallback if the recording cannot be fetched.
    """

    text: str
    say_language: str
    voice: str
    audio_url: str | None
    spoken_locale: str


def _fallback_voice_language() -> tuple[str, str]:
    fallback = get_language(FALLBACK_CODE)
    assert fallback is not None and fallback.voice is not None
    return fallback.voice.voice, fallback.voice.language


def _validate_audio_map(raw: object, source: str) -> AudioMap:
    if not isinstance(raw, dict):
        raise VoiceAudioMapError(f"{source}: top level must be an object of languages")
    result: AudioMap = {}
    for language_key, prompts in raw.items():
        code = normalize_language_code(str(language_key))
        if code is None:
            raise VoiceAudioMapError(f"{source}: unknown language {language_key!r}")
        if not isinstance(prompts, dict):
            raise VoiceAudioMapError(
                f"{source}: {language_key!r} must map prompt ids to audio URLs"
            )
        for prompt_id, url in prompts.items():
            if prompt_id not in VOICE_IDS:
                raise VoiceAudioMapError(
                    f"{source}: {language_key!r}: unknown prompt {prompt_id!r}; "
                    f"expected one of {', '.join(VOICE_IDS)}"
                )
            parsed = urlparse(url) if isinstance(url, str) else None
            if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise VoiceAudioMapError(
                    f"{source}: {language_key!r}: {prompt_id!r} must be an http(s) URL, got {url!r}"
                )
            result.setdefault(code, {})[prompt_id] = url
    return result


_cache: dict[tuple[str, int], AudioMap] = {}


def load_audio_map(path: str | os.PathLike[str] | None = None) -> AudioMap:
    """The recorded-audio mapping, from ``path`` or ``$MIMAMORI_VOICE_AUDIO_MAP``.

    Returns an empty mapping when no file is configured. Raises
    :class:`VoiceAudioMapError` for a configured but broken file, so start-up checks can
    refuse it loudly. The parsed file is cached until it changes on disk.
    """
    configured = path if path is not None else os.environ.get(AUDIO_MAP_ENV)
    if not configured:
        return {}
    file = Path(configured)
    try:
        stamp = file.stat().st_mtime_ns
    except OSError as error:
        raise VoiceAudioMapError(f"{AUDIO_MAP_ENV}: cannot read {file}: {error}") from error
    key = (str(file.resolve()), stamp)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VoiceAudioMapError(f"{file}: not valid JSON: {error}") from error
    mapping = _validate_audio_map(raw, str(file))
    _cache.clear()
    _cache[key] = mapping
    return mapping


def voice_prompt(
    prompt_id: str,
    locale: str | None,
    *,
    audio_map: AudioMap | None = None,
    **values: object,
) -> VoicePrompt:
    """The prompt ``prompt_id`` for a resident whose language is ``locale``.

    ``audio_map`` overrides the configured mapping (tests, previews). A broken mapping
    file never breaks a call in progress: it is logged and the call uses text-to-speech.
    """
    spec = MESSAGES.get(prompt_id)
    if spec is None or spec.audience is not Audience.VOICE:
        raise ValueError(f"{prompt_id!r} is not a voice prompt; use one of {VOICE_IDS}")

    code = normalize_language_code(locale) if locale else None
    language = get_language(code) if code else None
    if language is not None and language.voice is not None:
        spoken_locale = language.code
        voice, say_language = language.voice.voice, language.voice.language
    else:
        spoken_locale = FALLBACK_CODE
        voice, say_language = _fallback_voice_language()

    if audio_map is None:
        try:
            audio_map = load_audio_map()
        except VoiceAudioMapError:
            log.exception("ignoring recorded audio mapping; using text-to-speech")
            audio_map = {}
    audio_url = audio_map.get(code, {}).get(prompt_id) if code else None

    return VoicePrompt(
        text=render(prompt_id, spoken_locale, **values),
        say_language=say_language,
        voice=voice,
        audio_url=audio_url,
        spoken_locale=spoken_locale,
    )
