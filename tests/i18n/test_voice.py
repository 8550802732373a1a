"""Voice prompts: the right voice, the Easy Japanese fallback, and recorded audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i18n.languages import LANGUAGES
from i18n.messages import VOICE_GREETING, VOICE_IDS, VOICE_MENU
from i18n.render import render
from i18n.voice import AUDIO_MAP_ENV, VoiceAudioMapError, load_audio_map, voice_prompt

ORG = "輪島市社会福祉協議会"


@pytest.fixture(autouse=True)
def _no_audio_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUDIO_MAP_ENV, raising=False)


@pytest.mark.parametrize("code", ["ne", "my", "km", "si"])
def test_language_without_tts_voice_speaks_easy_japanese_with_a_japanese_voice(
    code: str,
) -> None:
    prompt = voice_prompt(VOICE_GREETING, code, org=ORG)
    assert prompt.spoken_locale == "easy_ja"
    assert prompt.say_language == "ja-JP"
    assert prompt.voice.startswith(("Polly.", "Google."))
    assert prompt.text == render(VOICE_GREETING, "easy_ja", org=ORG)
    assert prompt.audio_url is None


def test_keypad_menu_is_spoken_even_without_a_tts_voice() -> None:
    prompt = voice_prompt(VOICE_MENU, "ne")
    assert all(digit in prompt.text for digit in "123")


def test_language_with_tts_voice_speaks_its_own_prompt() -> None:
    prompt = voice_prompt(VOICE_GREETING, "vi", org=ORG)
    assert prompt.spoken_locale == "vi"
    assert (prompt.voice, prompt.say_language) == ("Google.vi-VN-Standard-A", "vi-VN")
    assert "Xin chào" in prompt.text


def test_every_language_gets_a_voice_and_a_twilio_language_tag() -> None:
    for language in LANGUAGES:
        for prompt_id in VOICE_IDS:
            prompt = voice_prompt(prompt_id, language.code, org=ORG, code="A7")
            assert prompt.text and prompt.voice and "-" in prompt.say_language
            if language.voice is not None:
                assert prompt.voice == language.voice.voice
                assert prompt.spoken_locale == language.code


def test_unknown_language_speaks_easy_japanese() -> None:
    prompt = voice_prompt(VOICE_GREETING, "xx", org=ORG)
    assert (prompt.spoken_locale, prompt.say_language) == ("easy_ja", "ja-JP")


def test_pt_br_speaks_brazilian_portuguese() -> None:
    prompt = voice_prompt(VOICE_GREETING, "pt_BR", org=ORG)
    assert prompt.say_language == "pt-BR" and "Olá" in prompt.text


def test_sms_messages_cannot_be_used_as_voice_prompts() -> None:
    with pytest.raises(ValueError):
        voice_prompt("resident.optout", "ja", org=ORG)


def _write_map(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "audio.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_recorded_audio_from_the_configured_map_is_played(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "https://audio.example.org/ne-greeting.mp3"
    monkeypatch.setenv(AUDIO_MAP_ENV, str(_write_map(tmp_path, {"ne": {VOICE_GREETING: url}})))
    greeting = voice_prompt(VOICE_GREETING, "ne", org=ORG)
    assert greeting.audio_url == url
    assert greeting.text  # still there as the fallback if the recording cannot be fetched
    assert voice_prompt(VOICE_MENU, "ne").audio_url is None
    assert voice_prompt(VOICE_GREETING, "my", org=ORG).audio_url is None


def test_audio_map_language_keys_are_normalized(tmp_path: Path) -> None:
    url = "https://audio.example.org/pt.mp3"
    mapping = load_audio_map(_write_map(tmp_path, {"pt-BR": {VOICE_MENU: url}}))
    assert mapping == {"pt_BR": {VOICE_MENU: url}}
    assert voice_prompt(VOICE_MENU, "pt_BR", audio_map=mapping).audio_url == url


def test_no_audio_map_configured_means_text_to_speech() -> None:
    assert load_audio_map() == {}
    assert voice_prompt(VOICE_GREETING, "ne", org=ORG).audio_url is None


@pytest.mark.parametrize(
    "data",
    [
        ["not", "an", "object"],
        {"xx": {VOICE_GREETING: "https://a.example/x.mp3"}},
        {"ne": {"voice.nope": "https://a.example/x.mp3"}},
        {"ne": {VOICE_GREETING: "file:///etc/passwd"}},
        {"ne": "https://a.example/x.mp3"},
    ],
)
def test_broken_audio_map_is_rejected_with_a_clear_error(tmp_path: Path, data: object) -> None:
    with pytest.raises(VoiceAudioMapError):
        load_audio_map(_write_map(tmp_path, data))


def test_broken_audio_map_never_breaks_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audio.json"
    path.write_text("{not json", encoding="utf-8")
    monkeypatch.setenv(AUDIO_MAP_ENV, str(path))
    prompt = voice_prompt(VOICE_GREETING, "ne", org=ORG)
    assert prompt.audio_url is None and prompt.text
