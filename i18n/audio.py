"""Recorded voice prompts for languages Twilio cannot speak, made at build time.

Twilio's ``<Say>`` has no voice for Nepali, Burmese, Khmer, Sinhala, Mongolian or Urdu.
espeak-ng (a Debian package) speaks several of them, so the image build renders each
voice prompt of those languages' catalogs to a small telephone-quality file (8 kHz mono
μ-law WAV, converted by sox) that the call plays with ``<Play>``. Nothing is generated
while a call is in progress, and no resident's data ever goes into a file: the prompts
are the catalog texts, nothing else.

**Placeholders.** Some prompts name the organization (``{org}``) or a case code
(``{code}``), which are only known at call time. They are not pre-generated whole: the
text is cut at its placeholders, each literal piece becomes its own file
(``voice.greeting.0.wav``, ``voice.greeting.1.wav``, ...) and the call plays piece,
``<Say>`` of the value, piece. The value is said by a Twilio voice that can read it (see
:func:`i18n.voice.value_voice`): espeak-ng reads a kanji name as "Chinese letter", while
Twilio's Japanese voice reads 輪島市社会福祉協議会 as the name residents know from letters
and signs. Generating the whole sentence on the server at first use would keep one voice,
but it would put the speech engine and a subprocess behind a public URL and make a name
written in kanji unintelligible; an operator who wants one voice records the whole prompt
(see below).

**Where files are looked up**, per prompt and language, first match wins:

1. ``MIMAMORI_VOICE_AUDIO_MAP``: a URL per prompt (see :mod:`i18n.voice`);
2. ``MIMAMORI_VOICE_AUDIO_DIR``: an operator's recordings, ``<dir>/<code>/<prompt id>.wav``
   or ``.mp3`` (for example ``ne/voice.greeting.mp3``), each a whole prompt, the
   organization's name included;
3. the built prompts, ``MIMAMORI_VOICE_PROMPTS_DIR`` or ``i18n/voice_prompts`` in the
   installed package (what ``mimamori i18n build-audio`` writes by default);
4. otherwise ``<Say>`` in Twilio's voice for the language, or in Easy Japanese.

Command line (the Dockerfile runs it)::

    python -m i18n.audio build [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import string
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from i18n.catalogs import load_catalogs
from i18n.languages import LANGUAGES, Language, get_language
from i18n.messages import VOICE_IDS

PROMPTS_DIR_ENV = "MIMAMORI_VOICE_PROMPTS_DIR"
RECORDINGS_DIR_ENV = "MIMAMORI_VOICE_AUDIO_DIR"
DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parent / "voice_prompts"
MANIFEST = "manifest.json"
ENGINE = "espeak-ng"

#: espeak-ng voices for languages without a Twilio voice. Checked against espeak-ng 1.51
#: (Debian 12): it has Nepali, Burmese, Sinhala and Urdu, but no Khmer and no Mongolian,
#: so those two are called in Easy Japanese unless an operator records prompts.
ESPEAK_VOICES: dict[str, str] = {"ne": "ne", "my": "my", "si": "si", "ur": "ur"}

#: espeak-ng's Nepali reads ASCII digits in English ("one", "two"); in Devanagari digits it
#: says "ek", "dui". The other voices read ASCII digits in their own language.
_NATIVE_DIGITS: dict[str, str] = {"ne": "०१२३४५६७८९"}

#: Speaking rate in words per minute: espeak-ng's default (175) is hard to follow on a
#: telephone line for an elderly listener.
SPEECH_RATE_WPM = 150
SAMPLE_RATE = 8000
_WAVE_FORMAT_MULAW = 7

#: Content types Twilio's ``<Play>`` accepts, by file extension.
MEDIA_TYPES: dict[str, str] = {"wav": "audio/wav", "mp3": "audio/mpeg"}

# <prompt id>[.<part>].<ext>; prompt ids are checked against VOICE_IDS separately.
_FILE_NAME = re.compile(r"^(?P<prompt>[a-z_]+\.[a-z_]+)(?:\.(?P<part>[0-9]))?\.(?P<ext>wav|mp3)$")

Source = Literal["recording_url", "recording", "engine"]


class AudioBuildError(RuntimeError):
    """The prompts cannot be built (engine missing, voice missing, conversion failed)."""


# --- What is spoken: catalog text cut at its placeholders ----------------------------


@dataclass(frozen=True, slots=True)
class Segments:
    """A prompt's text cut at its placeholders: ``pieces[i]`` comes before ``fields[i]``.

    ``len(pieces) == len(fields) + 1``; a piece with nothing to say (empty, or only
    punctuation) has no file."""

    pieces: tuple[str, ...]
    fields: tuple[str, ...]


def own_text(prompt_id: str, language: Language) -> str | None:
    """The prompt as the language's own catalog has it; None when it is not translated.

    Never the fallback chain's text: Nepali audio must not be Easy Japanese read by a
    Nepali voice."""
    loaded = load_catalogs().get(language.catalog)
    if loaded is None or prompt_id not in loaded.translated_ids:
        return None
    return str(loaded.translations.gettext(prompt_id))


def segments(template: str) -> Segments:
    pieces: list[str] = []
    fields: list[str] = []
    current = ""
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        current += literal
        if field is not None:
            pieces.append(current)
            fields.append(field)
            current = ""
    pieces.append(current)
    return Segments(tuple(pieces), tuple(fields))


def speakable(piece: str) -> bool:
    return any(character.isalnum() for character in piece)


def speech_text(code: str, text: str) -> str:
    """What the engine is given: the catalog text with digits in the script it reads."""
    digits = _NATIVE_DIGITS.get(code)
    if digits:
        text = text.translate(str.maketrans("0123456789", digits))
    return " ".join(text.split())


def file_name(prompt_id: str, part: int | None = None, ext: str = "wav") -> str:
    return f"{prompt_id}.{ext}" if part is None else f"{prompt_id}.{part}.{ext}"


def parse_file_name(name: str) -> tuple[str, int | None, str] | None:
    """``(prompt id, part, extension)`` for a valid audio file name, else None."""
    match = _FILE_NAME.fullmatch(name)
    if match is None or match["prompt"] not in VOICE_IDS:
        return None
    part = match["part"]
    return match["prompt"], int(part) if part is not None else None, match["ext"]


def engine_languages() -> tuple[Language, ...]:
    """Registered languages Twilio cannot speak and espeak-ng can, in registry order."""
    return tuple(
        language
        for language in LANGUAGES
        if language.voice is None and language.code in ESPEAK_VOICES
    )


# --- Building -------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AudioBuildError(
            f"{name} is not installed; install the Debian packages espeak-ng and sox "
            "(the Dockerfile and .ci/run do)"
        )
    return path


def espeak_has_voice(voice: str) -> bool:
    result = subprocess.run(
        [_tool("espeak-ng"), f"--voices={voice}"], capture_output=True, text=True, check=False
    )
    return any(
        len(columns) > 1 and columns[1] == voice
        for columns in (line.split() for line in result.stdout.splitlines()[1:])
    )


_SENTENCE_END = re.compile(r"(?<=[.!?。।॥။។៕۔؟])\s+|(?<=[।॥။។៕۔])")


def sentences(text: str) -> list[str]:
    """The text cut after each full stop, in the scripts of the engine languages.

    espeak-ng 1.51's Burmese voice overflows a buffer on a long clause, so the engine is
    given one sentence at a time."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def synthesize(text: str, voice: str, target: Path) -> None:
    """Speak ``text`` with espeak-ng into ``target``: 8 kHz mono μ-law WAV, normalised.

    Texts go through files, never the command line, so no text can be read as an
    option."""
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    with tempfile.TemporaryDirectory(prefix="mimamori-tts-") as tmp:
        commands: list[list[str]] = []
        raws: list[str] = []
        for index, sentence in enumerate(sentences(text)):
            text_file, raw = Path(tmp) / f"{index}.txt", Path(tmp) / f"{index}.wav"
            text_file.write_text(sentence, encoding="utf-8")
            commands.append(
                [espeak, "-v", voice, "-s", str(SPEECH_RATE_WPM), "-f", str(text_file),
                 "-w", str(raw)]
            )  # fmt: skip
            raws.append(str(raw))
        if not raws:
            raise AudioBuildError(f"nothing to say in {text!r}")
        # Joined, loud but not clipped, with a short tail so pieces do not run together.
        commands.append(
            [sox, *raws, "-r", str(SAMPLE_RATE), "-c", "1", "-e", "u-law", str(target),
             "norm", "-1", "pad", "0", "0.15"]
        )  # fmt: skip
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise AudioBuildError(
                    f"{Path(command[0]).name} failed ({result.returncode}) for {voice}: "
                    f"{result.stderr.strip()[:300]}"
                )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class BuildReport:
    out_dir: Path
    files: int
    languages: tuple[str, ...]
    untranslated: tuple[tuple[str, str], ...]  # (language, prompt id) left to the fallback


def build(out_dir: Path | None = None, codes: Iterable[str] | None = None) -> BuildReport:
    """Render every voice prompt of every engine language into ``out_dir``.

    Writes ``<out>/<code>/<prompt>[.<part>].wav`` and ``<out>/manifest.json``, which
    records the exact text of each file so that a catalog edited after the build is
    noticed (the stale file is not played). Files of languages not built this time are
    left alone; those of the languages built are replaced."""
    out = Path(out_dir) if out_dir is not None else DEFAULT_PROMPTS_DIR
    wanted = set(codes) if codes is not None else None
    languages = [lang for lang in engine_languages() if wanted is None or lang.code in wanted]
    if wanted is not None:
        unknown = wanted - {language.code for language in engine_languages()}
        if unknown:
            raise AudioBuildError(
                f"no speech engine voice for {', '.join(sorted(unknown))}; "
                f"espeak-ng prompts are built for {', '.join(ESPEAK_VOICES)}"
            )
    manifest = read_manifest(out)
    files = 0
    untranslated: list[tuple[str, str]] = []
    for language in languages:
        voice = ESPEAK_VOICES[language.code]
        if not espeak_has_voice(voice):
            raise AudioBuildError(f"espeak-ng has no voice {voice!r} for {language.code}")
        folder = out / language.code
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        entries: dict[str, dict[str, str]] = {}
        for prompt_id in VOICE_IDS:
            template = own_text(prompt_id, language)
            if template is None:
                untranslated.append((language.code, prompt_id))
                continue
            cut = segments(template)
            whole = not cut.fields
            for index, piece in enumerate(cut.pieces):
                if not speakable(piece):
                    continue
                name = file_name(prompt_id, None if whole else index)
                synthesize(speech_text(language.code, piece), voice, folder / name)
                entries[name] = {"text": piece, "sha256": _sha256(folder / name)}
                files += 1
        manifest[language.code] = {"engine": ENGINE, "voice": voice, "files": entries}
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8"
    )
    _manifest_cache.clear()
    return BuildReport(
        out, files, tuple(language.code for language in languages), tuple(untranslated)
    )


# --- Reading what was built or recorded ---------------------------------------------

_manifest_cache: dict[tuple[str, int], dict[str, dict]] = {}
_hash_cache: dict[tuple[str, int, int], str] = {}


def prompts_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    value = configured or os.environ.get(PROMPTS_DIR_ENV)
    return Path(value) if value else DEFAULT_PROMPTS_DIR


def recordings_dir(configured: str | os.PathLike[str] | None = None) -> Path | None:
    value = configured or os.environ.get(RECORDINGS_DIR_ENV)
    return Path(value) if value else None


def read_manifest(folder: Path) -> dict[str, dict]:
    """The build manifest of ``folder``; empty when nothing was built there."""
    path = folder / MANIFEST
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    key = (str(path.resolve()), stamp)
    if key not in _manifest_cache:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            data = {}
        _manifest_cache.clear()
        _manifest_cache[key] = data if isinstance(data, dict) else {}
    return _manifest_cache[key]


def _file_version(path: Path) -> str | None:
    """A short content hash for the URL, so Twilio's cache sees a changed file as new."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _hash_cache:
        if len(_hash_cache) > 4096:
            _hash_cache.clear()
        _hash_cache[key] = _sha256(path)[:12]
    return _hash_cache[key]


@dataclass(frozen=True, slots=True)
class AudioFile:
    """One file a call plays, as a path under ``/audio/``: ``<code>/<file name>``."""

    code: str
    name: str
    version: str

    @property
    def path(self) -> str:
        return f"/audio/{self.code}/{self.name}?v={self.version}"


@dataclass(frozen=True, slots=True)
class AudioChoice:
    """How a prompt is played: one whole file, or pieces around placeholder values.

    ``url`` is set for an operator's URL; ``files`` otherwise. For a prompt with
    placeholders built by the engine, ``files[i]`` is the piece before ``fields[i]`` (None
    for a piece with nothing to say)."""

    source: Source
    url: str | None = None
    files: tuple[AudioFile | None, ...] = ()
    fields: tuple[str, ...] = ()


def recording_file(folder: Path | None, code: str, prompt_id: str) -> Path | None:
    if folder is None:
        return None
    for ext in MEDIA_TYPES:
        candidate = folder / code / file_name(prompt_id, ext=ext)
        if candidate.is_file():
            return candidate
    return None


def built_choice(folder: Path, code: str, prompt_id: str) -> AudioChoice | None:
    """The built prompt, if every piece is there and was made from today's catalog text."""
    language = get_language(code)
    entry = read_manifest(folder).get(code)
    if language is None or not isinstance(entry, dict):
        return None
    template = own_text(prompt_id, language)
    if template is None:
        return None
    cut = segments(template)
    whole = not cut.fields
    files: list[AudioFile | None] = []
    for index, piece in enumerate(cut.pieces):
        if not speakable(piece):
            files.append(None)
            continue
        name = file_name(prompt_id, None if whole else index)
        recorded = entry.get("files", {}).get(name)
        if not recorded or recorded.get("text") != piece or not (folder / code / name).is_file():
            return None  # not built, or built from an older catalog: do not play it
        files.append(AudioFile(code, name, str(recorded.get("sha256", ""))[:12]))
    return AudioChoice("engine", files=tuple(files), fields=cut.fields)


def choose_audio(
    prompt_id: str,
    code: str,
    *,
    audio_map: dict[str, dict[str, str]],
    recordings: Path | None,
    built: Path | None,
) -> AudioChoice | None:
    """The first of: operator URL, operator recording, built prompt; None means ``<Say>``."""
    url = audio_map.get(code, {}).get(prompt_id)
    if url:
        return AudioChoice("recording_url", url=url)
    recorded = recording_file(recordings, code, prompt_id)
    if recorded is not None:
        version = _file_version(recorded)
        if version is not None:
            return AudioChoice("recording", files=(AudioFile(code, recorded.name, version),))
    if built is not None:
        return built_choice(built, code, prompt_id)
    return None


def find_served_file(
    code: str, name: str, *, recordings: Path | None, built: Path
) -> tuple[Path, str] | None:
    """The file ``GET /audio/<code>/<name>`` serves, and its content type; else None.

    Paths are put together from a registered language code and a parsed prompt file name,
    never from the request's own text, so nothing outside the two folders can be named."""
    language = get_language(code)
    parsed = parse_file_name(name)
    if language is None or parsed is None:
        return None
    prompt_id, part, ext = parsed
    if part is None and recordings is not None:
        recorded = recordings / language.code / file_name(prompt_id, ext=ext)
        if recorded.is_file():
            return recorded, MEDIA_TYPES[ext]
    if ext != "wav":
        return None
    choice = built_choice(built, language.code, prompt_id)
    clean = file_name(prompt_id, part)
    if choice is None or not any(f is not None and f.name == clean for f in choice.files):
        return None
    return built / language.code / clean, MEDIA_TYPES[ext]


# --- Checking a file (tests, status) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class WavInfo:
    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    seconds: float


def wav_info(data: bytes) -> WavInfo:
    """Read a RIFF/WAVE header; the standard ``wave`` module does not read μ-law files."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    offset, fmt, data_size = 12, None, None
    while offset + 8 <= len(data):
        chunk, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        body = data[offset + 8 : offset + 8 + size]
        if chunk == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif chunk == b"data":
            data_size = len(body)
        offset += 8 + size + (size & 1)
    if fmt is None or data_size is None:
        raise ValueError("WAVE file without fmt or data chunk")
    tag, channels, rate, byte_rate, _align, bits = fmt
    return WavInfo(tag, channels, rate, bits, data_size / byte_rate if byte_rate else 0.0)


# --- Command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m i18n.audio", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="render the voice prompts with espeak-ng")
    build_cmd.add_argument("--out", type=Path, default=None, help=f"default: {DEFAULT_PROMPTS_DIR}")
    build_cmd.add_argument("--language", action="append", dest="codes", help="only this language")
    args = parser.parse_args(argv)
    try:
        report = build(args.out, args.codes)
    except AudioBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    languages = ", ".join(report.languages) or "no language"
    print(f"{report.files} files for {languages} in {report.out_dir}")
    for code, prompt_id in report.untranslated:
        print(f"not translated, left to the fallback: {code} {prompt_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
