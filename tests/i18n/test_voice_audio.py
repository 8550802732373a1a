"""Voice prompts rendered by the real espeak-ng and sox, and how a prompt picks its audio.

These tests need the Debian packages espeak-ng and sox (``.ci/run`` installs them). When
they are missing the tests fail, on purpose: a skipped test would hide that the image
build, which runs the same code, cannot make the prompts either.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from i18n import audio
from i18n.languages import LANGUAGES, get_language
from i18n.messages import VOICE_GREETING, VOICE_IDS, VOICE_MENU
from i18n.render import render
from i18n.voice import AUDIO_MAP_ENV, call_sources, value_voice, voice_prompt

PUBLIC = "https://mimamori.example.org"
ORG_KANA = "わじまし しゃかいふくし きょうぎかい"
MULAW = 7


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: apt-get install espeak-ng sox")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every engine language's prompts, built once for the session into a temp folder."""
    require_tools()
    out = tmp_path_factory.mktemp("voice_prompts")
    audio.build(out)
    return out


@pytest.fixture(autouse=True)
def _no_configured_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (AUDIO_MAP_ENV, audio.RECORDINGS_DIR_ENV, audio.PROMPTS_DIR_ENV):
        monkeypatch.delenv(name, raising=False)


def translated_engine_languages() -> list[str]:
    return [
        language.code
        for language in audio.engine_languages()
        if all(audio.own_text(prompt_id, language) for prompt_id in VOICE_IDS)
    ]


def expected_files(code: str) -> list[str]:
    language = get_language(code)
    assert language is not None
    names = []
    for prompt_id in VOICE_IDS:
        template = audio.own_text(prompt_id, language)
        assert template is not None
        cut = audio.segments(template)
        for index, piece in enumerate(cut.pieces):
            if audio.speakable(piece):
                names.append(audio.file_name(prompt_id, index if cut.fields else None))
    return names


def soxi_seconds(path: Path) -> float:
    result = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(result.stdout)


# --- Which languages ------------------------------------------------------------------


def test_espeak_ng_speaks_nepali_burmese_and_sinhala_but_not_khmer_or_mongolian() -> None:
    require_tools()
    for voice in ("ne", "my", "si", "ur"):
        assert audio.espeak_has_voice(voice), voice
    for voice in ("km", "mn"):
        assert not audio.espeak_has_voice(voice), voice
    engine = {language.code for language in audio.engine_languages()}
    assert {"ne", "my", "si"} <= engine
    assert not engine & {"km", "mn"}
    # A language Twilio speaks never gets engine prompts: its Twilio voice is better.
    assert all(language.voice is None for language in audio.engine_languages())


# --- Building real audio ----------------------------------------------------------------


@pytest.mark.parametrize("code", ["ne", "my", "si", "ur"])
def test_every_prompt_is_built_as_telephone_audio_of_real_speech(built: Path, code: str) -> None:
    folder = built / code
    names = expected_files(code)
    assert sorted(path.name for path in folder.iterdir()) == sorted(names)
    for name in names:
        path = folder / name
        data = path.read_bytes()
        info = audio.wav_info(data)
        assert (info.format_tag, info.channels, info.sample_rate, info.bits) == (MULAW, 1, 8000, 8)
        assert info.seconds > 0.5, name
        assert abs(info.seconds - soxi_seconds(path)) < 0.01
        # Not silence: μ-law silence is 0xFF/0x7F; speech moves most samples away from it.
        samples = data[-int(info.seconds * 8000) :]
        assert sum(byte not in (0xFF, 0x7F, 0xFE, 0x7E) for byte in samples) > len(samples) / 3
    # The menu names three keys: it is long, never a clipped fragment.
    assert audio.wav_info((folder / "voice.menu.wav").read_bytes()).seconds > 5


def test_longer_text_gives_longer_audio(built: Path) -> None:
    menu = audio.wav_info((built / "ne" / "voice.menu.wav").read_bytes()).seconds
    thanks = audio.wav_info((built / "ne" / "voice.thanks.wav").read_bytes()).seconds
    assert menu > thanks


def test_manifest_records_the_catalog_text_of_every_file(built: Path) -> None:
    manifest = json.loads((built / audio.MANIFEST).read_text(encoding="utf-8"))
    ne = get_language("ne")
    assert ne is not None
    assert manifest["ne"]["engine"] == "espeak-ng" and manifest["ne"]["voice"] == "ne"
    greeting = audio.own_text(VOICE_GREETING, ne)
    assert greeting is not None and "{org}" in greeting
    before, after = greeting.split("{org}")
    files = manifest["ne"]["files"]
    assert files["voice.greeting.0.wav"]["text"] == before
    assert files["voice.greeting.1.wav"]["text"] == after
    assert "voice.greeting.wav" not in files  # the name is never baked into the audio


def test_nepali_digits_are_spoken_in_nepali_not_english() -> None:
    require_tools()
    ne = get_language("ne")
    assert ne is not None
    menu = audio.own_text(VOICE_MENU, ne)
    assert menu is not None and "1" in menu

    def phonemes(text: str) -> str:
        return subprocess.run(
            ["espeak-ng", "-v", "ne", "-q", "-x", text], capture_output=True, text=True, check=True
        ).stdout

    assert "(en)" in phonemes(menu)  # ASCII digits switch espeak-ng's Nepali to English
    spoken = audio.speech_text("ne", menu)
    assert "१" in spoken and "1" not in spoken
    assert "(en)" not in phonemes(spoken)


def test_a_long_burmese_sentence_is_given_to_the_engine_one_sentence_at_a_time() -> None:
    text = "နေကောင်းလား မေးရန် ဖုန်းဆက်ခြင်း ဖြစ်ပါသည်။ ထပ်မံ ဖုန်းဆက်ပါမည်။ SMS ကို"
    assert audio.sentences(text) == [
        "နေကောင်းလား မေးရန် ဖုန်းဆက်ခြင်း ဖြစ်ပါသည်။",
        "ထပ်မံ ဖုန်းဆက်ပါမည်။",
        "SMS ကို",
    ]
    assert audio.sentences("Hello. How are you? Fine") == ["Hello.", "How are you?", "Fine"]


def test_building_without_the_engine_fails_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(audio.AudioBuildError, match="espeak-ng is not installed"):
        audio.build(tmp_path / "out", ["ne"])


def test_building_a_language_the_engine_cannot_speak_is_refused(tmp_path: Path) -> None:
    with pytest.raises(audio.AudioBuildError, match="km"):
        audio.build(tmp_path, ["km"])


# --- Choosing audio for a prompt --------------------------------------------------------


def test_built_prompt_is_played_with_the_name_said_between_its_pieces(built: Path) -> None:
    prompt = voice_prompt(VOICE_GREETING, "ne", public_url=PUBLIC, prompts_dir=built, org=ORG_KANA)
    assert prompt.source == "engine" and prompt.audio_url is None
    first, name, second = prompt.parts
    manifest = json.loads((built / audio.MANIFEST).read_text(encoding="utf-8"))["ne"]["files"]
    version = manifest["voice.greeting.0.wav"]["sha256"][:12]
    assert first.audio_url == f"{PUBLIC}/audio/ne/voice.greeting.0.wav?v={version}"
    assert (name.text, name.voice, name.say_language) == (ORG_KANA, "Polly.Mizuki", "ja-JP")
    assert second.audio_url is not None and "/audio/ne/voice.greeting.1.wav?v=" in second.audio_url
    # Text stays the Easy Japanese <Say> fallback.
    assert prompt.text == render(VOICE_GREETING, "easy_ja", org=ORG_KANA)


def test_a_prompt_without_placeholders_is_one_file(built: Path) -> None:
    prompt = voice_prompt(VOICE_MENU, "si", public_url=PUBLIC, prompts_dir=built)
    assert prompt.source == "engine" and not prompt.parts
    assert prompt.audio_url is not None
    assert prompt.audio_url.startswith(f"{PUBLIC}/audio/si/voice.menu.wav?v=")


def test_an_empty_name_is_not_said(built: Path) -> None:
    prompt = voice_prompt(VOICE_GREETING, "my", public_url=PUBLIC, prompts_dir=built, org=" ")
    assert all(part.audio_url for part in prompt.parts)


def test_values_are_said_by_a_voice_that_reads_their_script() -> None:
    assert value_voice("輪島市社会福祉協議会").language == "ja-JP"
    assert value_voice(ORG_KANA).language == "ja-JP"
    assert value_voice("Wajima City Social Welfare Council").language.startswith("en")
    assert value_voice("A7").language.startswith("en")
    # No Twilio voice reads Sinhala script: the Japanese voice is the honest fallback.
    assert value_voice("සිංහල").language == "ja-JP"


def test_without_a_public_url_built_audio_is_not_used(built: Path) -> None:
    prompt = voice_prompt(VOICE_MENU, "ne", prompts_dir=built)
    assert prompt.source == "easy_japanese" and prompt.audio_url is None


def test_khmer_has_no_engine_prompt_and_is_said_in_easy_japanese(built: Path) -> None:
    prompt = voice_prompt(VOICE_MENU, "km", public_url=PUBLIC, prompts_dir=built)
    assert prompt.source == "easy_japanese" and prompt.audio_url is None and not prompt.parts
    assert (prompt.voice, prompt.say_language) == ("Polly.Mizuki", "ja-JP")
    assert prompt.text == render(VOICE_MENU, "easy_ja")


def test_a_prompt_built_from_an_older_catalog_text_is_not_played(
    built: Path, tmp_path: Path
) -> None:
    stale = tmp_path / "stale"
    shutil.copytree(built, stale)
    manifest_path = stale / audio.MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["ne"]["files"]["voice.menu.wav"]["text"] = "an older wording"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    assert voice_prompt(VOICE_MENU, "ne", public_url=PUBLIC, prompts_dir=stale).source == (
        "easy_japanese"
    )
    assert voice_prompt("voice.thanks", "ne", public_url=PUBLIC, prompts_dir=stale).source == (
        "engine"
    )


def write_recording(path: Path, seconds: float = 1.0) -> Path:
    """A real WAV made by sox (a tone): what an operator's recording would be."""
    require_tools()
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(path),
         "synth", str(seconds), "sine", "440"],
        check=True,
    )  # fmt: skip
    return path


def test_override_order_map_url_then_recording_then_built_then_easy_japanese(
    built: Path, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    url = "https://audio.example.org/ne-menu.mp3"
    audio_map = {"ne": {VOICE_MENU: url}}

    def menu(**kwargs: object) -> object:
        return voice_prompt(VOICE_MENU, "ne", public_url=PUBLIC, **kwargs)  # type: ignore[arg-type]

    assert menu(prompts_dir=built).source == "engine"  # type: ignore[attr-defined]
    write_recording(recordings / "ne" / "voice.menu.wav")
    recorded = menu(prompts_dir=built, recordings_dir=recordings)
    assert recorded.source == "recording"  # type: ignore[attr-defined]
    assert recorded.audio_url.startswith(f"{PUBLIC}/audio/ne/voice.menu.wav?v=")  # type: ignore[attr-defined]
    assert recorded.audio_url != menu(prompts_dir=built).audio_url  # type: ignore[attr-defined]
    mapped = menu(prompts_dir=built, recordings_dir=recordings, audio_map=audio_map)
    assert (mapped.source, mapped.audio_url) == ("recording_url", url)  # type: ignore[attr-defined]
    # Nothing configured and nothing built: Easy Japanese in a Japanese voice.
    assert menu(prompts_dir=tmp_path / "nothing").source == "easy_japanese"  # type: ignore[attr-defined]


def test_a_whole_recording_replaces_the_pieces_of_a_prompt_with_a_name(
    built: Path, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    write_recording(recordings / "ne" / "voice.greeting.wav")
    prompt = voice_prompt(
        VOICE_GREETING,
        "ne",
        public_url=PUBLIC,
        prompts_dir=built,
        recordings_dir=recordings,
        org=ORG_KANA,
    )
    assert prompt.source == "recording" and not prompt.parts
    assert prompt.audio_url is not None and "/audio/ne/voice.greeting.wav?v=" in prompt.audio_url


def test_a_recording_gives_khmer_a_voice(built: Path, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    write_recording(recordings / "km" / "voice.thanks.wav")
    sources = call_sources("km", recordings_dir=recordings, prompts_dir=built)
    assert sources["voice.thanks"] == "recording"
    assert sources["voice.menu"] == "easy_japanese"


def test_recording_change_changes_the_url(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    path = write_recording(recordings / "km" / "voice.menu.wav", 1.0)
    first = voice_prompt(VOICE_MENU, "km", public_url=PUBLIC, recordings_dir=recordings)
    write_recording(path, 2.0)
    second = voice_prompt(VOICE_MENU, "km", public_url=PUBLIC, recordings_dir=recordings)
    assert first.audio_url != second.audio_url


@pytest.mark.parametrize(
    "name",
    [
        "../manifest.json",
        "voice.menu.txt",
        "voice.nope.wav",
        "resident.checkin.wav",
        "voice.menu..wav",
        "voice.menu.10.wav",
        "..%2Fvoice.menu.wav",
        "VOICE.MENU.WAV",
        "voice.menu.wav/",
    ],
)
def test_only_known_prompt_file_names_are_accepted(name: str) -> None:
    assert audio.parse_file_name(name) is None


def test_every_language_has_a_spoken_prompt_or_a_stated_fallback(built: Path) -> None:
    for language in LANGUAGES:
        sources = call_sources(language.code, prompts_dir=built)
        assert set(sources) == set(VOICE_IDS)
        for prompt_id, source in sources.items():
            if language.voice is not None:
                expected = "twilio_voice"
            elif language in audio.engine_languages() and audio.own_text(prompt_id, language):
                expected = "engine"  # a prompt the catalog has not translated yet falls back
            else:
                expected = "easy_japanese"
            assert source == expected, (language.code, prompt_id)
    assert {"ne", "my", "si", "ur"} <= set(translated_engine_languages())


def test_the_image_build_renders_the_prompts_into_the_installed_package() -> None:
    dockerfile = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    runs = [line.strip() for line in text.splitlines() if line.strip().startswith("RUN ")]
    [build] = [run for run in runs if "-m i18n.audio build" in run]
    assert "apt-get install" in build and " espeak-ng " in build and " sox " in build
    # From /src, `python -m` would import the source tree and write the prompts outside the
    # venv that the final stage copies.
    assert build.index("cd /") < build.index("-m i18n.audio build")
    assert "cd /src" not in build
    stages = text.split("\nFROM ")
    assert "i18n.audio build" not in stages[-1], "the prompts are built in the builder stage"
    assert "COPY --from=builder /opt/mimamori /opt/mimamori" in stages[-1]
