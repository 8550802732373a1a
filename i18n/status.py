"""Data behind ``mimamori i18n status``: how ready each language is.

The table people read is drawn by :mod:`service.cli.language_status`, in the command line's
language; this module knows no reader and prints nothing.

Staff deciding whether to register residents in a language need to see, in one table,
whether every text is translated, whether a native speaker has reviewed it, whether
calls can speak it, and what a worst-case SMS costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i18n import audio
from i18n.catalogs import load_catalogs
from i18n.languages import FALLBACK_CODE, LANGUAGES, Language
from i18n.messages import LONG_SAMPLE_VALUES, MESSAGES, RESIDENT_SMS_IDS
from i18n.names import LocalizedName, spoken_name, written_name
from i18n.render import fallback_chain, render
from i18n.segments import combined_encoding, sms_segments
from i18n.voice import VoiceAudioMapError, call_sources, load_audio_map

#: Without ``--org``: a council with a kanji name, its kana reading and a Latin-letter name,
#: as a council that has set its names would have. Latin-script languages get the Latin
#: name, the others the kanji one (see ``i18n.names``).
SAMPLE_ORG = LocalizedName(
    LONG_SAMPLE_VALUES["org"],
    {"easy_ja": "わじまし しゃかいふくし きょうぎかい", "en": "Wajima City Social Welfare Council"},
)


def worst_case_values(language: Language, org: LocalizedName | None = None) -> dict[str, str]:
    """Long but realistic values; ``{language}`` is the language's own (long) name and
    ``{org}`` the name a reader of this language gets (``SAMPLE_ORG``'s without ``org``)."""
    return {
        **LONG_SAMPLE_VALUES,
        "org": (org or SAMPLE_ORG).for_reader(language.code),
        "language": language.native_name,
    }


def resident_sms_segments(
    language: Language, locales_dir: Path | None = None, org: LocalizedName | None = None
) -> dict[str, dict[str, Any]]:
    """Encoding, units and segments of every resident SMS rendered with long values."""
    values = worst_case_values(language, org)
    result: dict[str, dict[str, Any]] = {}
    for message_id in RESIDENT_SMS_IDS:
        info = sms_segments(render(message_id, language.code, locales_dir=locales_dir, **values))
        result[message_id] = {
            "encoding": info.encoding,
            "units": info.units,
            "segments": info.segments,
        }
    return result


def _name_columns(language: Language, org: LocalizedName) -> dict[str, Any]:
    """Which organization name the language's SMS and calls use, and where it came from."""
    written, written_source = written_name(org.japanese, org.names, language.code)
    spoken = spoken_name(org.japanese, org.names, language.code)
    return {
        "org_name": written,
        "org_name_source": written_source,
        "org_name_spoken": org.spoken(language.code),
        "org_name_spoken_source": spoken.source,
    }


def call_voice(
    language: Language, *, recordings_dir: Path | None = None, prompts_dir: Path | None = None
) -> dict[str, Any]:
    """Whether a call is spoken in ``language``, by what, and what the fallback is.

    ``call_prompts`` maps each voice prompt to its source (``twilio_voice``,
    ``recording_url``, ``recording``, ``engine``, ``easy_japanese``); ``call_fallback`` is
    ``easy_ja`` when any prompt is still said in Easy Japanese; ``call_engine`` names the
    espeak-ng voice that can render prompts for a language Twilio cannot speak."""
    try:
        audio_map = load_audio_map()
    except VoiceAudioMapError:
        audio_map = {}  # a broken file is ignored by calls too (and logged there)
    sources = call_sources(
        language.code,
        audio_map=audio_map,
        recordings_dir=recordings_dir,
        prompts_dir=prompts_dir,
    )
    kinds = set(sources.values())
    engine_voice = audio.ESPEAK_VOICES.get(language.code) if language.voice is None else None
    return {
        "call_spoken": kinds.pop() if len(kinds) == 1 else "mixed",
        "call_prompts": sources,
        "call_fallback": FALLBACK_CODE if "easy_japanese" in sources.values() else None,
        "call_engine": f"{audio.ENGINE}:{engine_voice}" if engine_voice else None,
    }


def status_rows(
    locales_dir: Path | None = None,
    org: LocalizedName | None = None,
    *,
    recordings_dir: Path | None = None,
    prompts_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """One row per supported language, JSON-serialisable. Segments are counted with the
    names ``org`` would be written with (``SAMPLE_ORG`` without it); ``sms_encoding`` is
    the encoding the longest messages really need with those names, ``declared_encoding``
    what the language's own letters need."""
    catalogs = load_catalogs(locales_dir)
    total = len(MESSAGES)
    rows: list[dict[str, Any]] = []
    for language in LANGUAGES:
        chain = fallback_chain(language.code, locales_dir)
        catalog_code = chain[0] if chain else None
        loaded = catalogs.get(catalog_code) if catalog_code else None
        # A language served only by the Easy Japanese fallback is 0% translated.
        own = loaded is not None and catalog_code == language.catalog
        translated = len(loaded.translated_ids & MESSAGES.keys()) if own and loaded else 0
        segments = resident_sms_segments(language, locales_dir, org)
        rows.append(
            {
                "code": language.code,
                "native_name": language.native_name,
                "english_name": language.english_name,
                "catalog": catalog_code,
                "translated": translated,
                "total": total,
                "completeness": round(100.0 * translated / total, 1) if total else 100.0,
                "review_status": (loaded.review_status if own and loaded else None) or "missing",
                "voice": language.voice.voice if language.voice else None,
                "voice_language": language.voice.language if language.voice else None,
                "sms_encoding": combined_encoding(s["encoding"] for s in segments.values()),
                "declared_encoding": language.sms_encoding,
                **_name_columns(language, org or SAMPLE_ORG),
                "segments": {message_id: s["segments"] for message_id, s in segments.items()},
                "max_segments": max(s["segments"] for s in segments.values()),
                **call_voice(language, recordings_dir=recordings_dir, prompts_dir=prompts_dir),
            }
        )
    return rows
