"""What a check-in call says, and in which voice.

Twilio has no text-to-speech voice for some residents' languages (Nepali, Burmese,
Khmer, Sinhala, Mongolian, Urdu). For those, in this order:

1. ``MIMAMORI_VOICE_AUDIO_MAP`` names a JSON file mapping language and prompt to an audio
   URL (an operator's recording hosted anywhere)::

       {"ne": {"voice.greeting": "https://example.org/audio/ne-greeting.mp3"}}

2. ``MIMAMORI_VOICE_AUDIO_DIR`` holds an operator's recordings, ``<code>/<prompt id>.wav``
   or ``.mp3``, served by ``GET /audio/...``;
3. the prompts espeak-ng rendered at build time (:mod:`i18n.audio`), where it speaks the
   language;
4. otherwise the Easy Japanese prompt in a Japanese voice: most residents who have lived
   in Japan for a while recognise simple Japanese, and the keypad menu (1, 2, 3) works
   whatever language the words were in.

The same order applies to every language, so a council may also replace a Twilio voice
with its own recording. Files in 2 and 3 are only used when the caller gives the public
base URL (Twilio fetches ``<Play>`` URLs from outside).
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from i18n import audio
from i18n.languages import FALLBACK_CODE, TwilioVoice, get_language, normalize_language_code
from i18n.messages import MESSAGES, VOICE_IDS, Audience
from i18n.render import render

log = logging.getLogger(__name__)

AUDIO_MAP_ENV = "MIMAMORI_VOICE_AUDIO_MAP"

AudioMap = dict[str, dict[str, str]]

#: How a prompt reaches the listener: Twilio's voice for the language, an operator's
#: recording (by URL, or in the recordings folder), a prompt the speech engine rendered at
#: build time, or the Easy Japanese fallback in a Japanese voice.
PromptSource = Literal["twilio_voice", "recording_url", "recording", "engine", "easy_japanese"]


class VoiceAudioMapError(ValueError):
    """The recorded-audio mapping file is unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class SpokenPart:
    """A piece of a prompt: a file to ``<Play>``, or a value to ``<Say>`` in ``voice``."""

    audio_url: str | None = None
    text: str | None = None
    voice: str | None = None
    say_language: str | None = None


@dataclass(frozen=True, slots=True)
class VoicePrompt:
    """One prompt of a call.

    ``text`` is always set and is what ``<Say>`` reads (in ``spoken_locale``, with
    ``voice`` and ``say_language``) when there is no audio, and the fallback to say if
    a recording cannot be fetched. When ``audio_url`` is set it
    is a recording of the whole prompt in the resident's own language and is played
    instead. When ``parts`` is set the prompt is built audio cut around its placeholder
    values, played and said in that order. ``source`` says which it is.
    """

    text: str
    say_language: str
    voice: str
    audio_url: str | None
    spoken_locale: str
    parts: tuple[SpokenPart, ...] = ()
    source: PromptSource = "twilio_voice"


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


# Scripts (the first word of a character's Unicode name) and the language whose Twilio
# voice reads them. A placeholder value is said by one of these voices.
_SCRIPT_READERS: dict[str, str] = {
    "LATIN": "en",
    "CJK": "ja",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HALFWIDTH": "ja",
    "FULLWIDTH": "ja",
    "HANGUL": "ko",
    "THAI": "th",
    "DEVANAGARI": "hi",
    "BENGALI": "bn",
    "TAMIL": "ta",
}


def value_voice(value: str) -> TwilioVoice:
    """A Twilio voice that can read ``value`` (an organization's name, a case code).

    Chosen by the script most of its letters are in: a kanji or kana name is read by the
    Japanese voice, a romanised one by the English voice, Devanagari by the Hindi voice
    where one is registered. Anything else falls back to the Japanese voice, which reads
    kanji, kana and Latin letters: a name in Burmese or Sinhala script cannot be said by
    any Twilio voice, so such an organization should give a romanised name for the voice.
    """
    scripts: Counter[str] = Counter()
    for character in value:
        if character.isalpha():
            scripts[unicodedata.name(character, "UNKNOWN").split(" ", 1)[0]] += 1
    for script, _count in scripts.most_common():
        reader = get_language(_SCRIPT_READERS.get(script, ""))
        if reader is not None and reader.voice is not None:
            return reader.voice
        break
    fallback = get_language(FALLBACK_CODE)
    assert fallback is not None and fallback.voice is not None
    return fallback.voice


def _parts(
    choice: audio.AudioChoice, public_url: str, values: dict[str, object]
) -> tuple[SpokenPart, ...]:
    parts: list[SpokenPart] = []
    for index, file in enumerate(choice.files):
        if file is not None:
            parts.append(SpokenPart(audio_url=public_url + file.path))
        if index < len(choice.fields):
            value = " ".join(str(values.get(choice.fields[index], "")).split())
            if value:
                reader = value_voice(value)
                parts.append(
                    SpokenPart(text=value, voice=reader.voice, say_language=reader.language)
                )
    return tuple(parts)


def voice_prompt(
    prompt_id: str,
    locale: str | None,
    *,
    audio_map: AudioMap | None = None,
    public_url: str | None = None,
    recordings_dir: str | os.PathLike[str] | None = None,
    prompts_dir: str | os.PathLike[str] | None = None,
    **values: object,
) -> VoicePrompt:
    """The prompt ``prompt_id`` for a resident whose language is ``locale``.

    ``audio_map`` overrides the configured mapping (tests, previews). With ``public_url``
    (the base Twilio fetches from), recordings in ``recordings_dir`` and built prompts in
    ``prompts_dir`` are played too (each defaults to its environment variable, see
    :mod:`i18n.audio`). A broken mapping file never breaks a call in progress: it is
    logged and the call goes on without it.
    """
    spec = MESSAGES.get(prompt_id)
    if spec is None or spec.audience is not Audience.VOICE:
        raise ValueError(f"{prompt_id!r} is not a voice prompt; use one of {VOICE_IDS}")

    code = normalize_language_code(locale) if locale else None
    language = get_language(code) if code else None
    source: PromptSource
    if language is not None and language.voice is not None:
        spoken_locale, source = language.code, "twilio_voice"
        voice, say_language = language.voice.voice, language.voice.language
    else:
        spoken_locale, source = FALLBACK_CODE, "easy_japanese"
        voice, say_language = _fallback_voice_language()

    if audio_map is None:
        try:
            audio_map = load_audio_map()
        except VoiceAudioMapError:
            log.exception("ignoring recorded audio mapping; using text-to-speech")
            audio_map = {}
    choice = None
    if code is not None:
        choice = audio.choose_audio(
            prompt_id,
            code,
            audio_map=audio_map,
            recordings=audio.recordings_dir(recordings_dir) if public_url else None,
            built=audio.prompts_dir(prompts_dir) if public_url else None,
        )
    audio_url: str | None = None
    parts: tuple[SpokenPart, ...] = ()
    if choice is not None:
        source = choice.source
        base = (public_url or "").rstrip("/")
        if choice.url is not None:
            audio_url = choice.url
        elif not choice.fields and len(choice.files) == 1 and choice.files[0] is not None:
            audio_url = base + choice.files[0].path
        else:
            parts = _parts(choice, base, values)

    return VoicePrompt(
        text=render(prompt_id, spoken_locale, **values),
        say_language=say_language,
        voice=voice,
        audio_url=audio_url,
        spoken_locale=spoken_locale,
        parts=parts,
        source=source,
    )


def call_sources(
    code: str,
    *,
    audio_map: AudioMap | None = None,
    recordings_dir: str | os.PathLike[str] | None = None,
    prompts_dir: str | os.PathLike[str] | None = None,
) -> dict[str, PromptSource]:
    """How each voice prompt reaches a listener of ``code`` in this installation.

    Resolved exactly as a call resolves it (sample values, a placeholder public URL), so
    ``i18n status`` cannot claim a voice the calls do not have."""
    from i18n.messages import LONG_SAMPLE_VALUES

    return {
        prompt_id: voice_prompt(
            prompt_id,
            code,
            audio_map=audio_map,
            public_url="https://status.invalid",
            recordings_dir=recordings_dir,
            prompts_dir=prompts_dir,
            **LONG_SAMPLE_VALUES,
        ).source
        for prompt_id in VOICE_IDS
    }
