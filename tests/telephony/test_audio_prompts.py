"""Calls in languages Twilio cannot speak: real espeak-ng prompts in the TwiML, served by
the public ``/audio/`` route, replaced by an operator's recordings, shown by i18n status.

Needs espeak-ng and sox (``.ci/run`` installs them); without them these tests fail.
"""

# The `world` fixture is imported from tests/checkins/conftest.py, so test parameters named
# `world` shadow the import on purpose.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from i18n import audio
from i18n.messages import VOICE_IDS
from i18n.voice import AUDIO_MAP_ENV, voice_prompt
from service.checkins.models import CheckInState
from service.config import get_settings
from service.telephony.models import OutboxMessage
from tests.checkins.conftest import World, world  # noqa: F401
from tests.telephony.worlds import (
    ACCOUNT,
    LANDLINE,
    LANDLINE_LOCAL,
    OUR_NUMBER,
    checkin_of,
    outbox_to,
    signed_headers,
    start_round_for,
)

ORG = "輪島市社会福祉協議会"
MIMAMORI = str(Path(sys.executable).parent / "mimamori")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: apt-get install espeak-ng sox")
    out = tmp_path_factory.mktemp("voice_prompts")
    audio.build(out, ["ne", "my"])
    return out


@pytest.fixture
def voice_env(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings pointing at the built prompts and an empty recordings folder."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    monkeypatch.delenv(AUDIO_MAP_ENV, raising=False)
    monkeypatch.setenv(audio.PROMPTS_DIR_ENV, str(built))
    monkeypatch.setenv(audio.RECORDINGS_DIR_ENV, str(recordings))
    get_settings.cache_clear()
    return recordings


def record(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(path),
         "synth", str(seconds), "sine", "440"],
        check=True,
    )  # fmt: skip
    return path


def call_for(world: World, language: str) -> OutboxMessage:
    plan = [{"channel": "voice", "message": "prompt", "wait_minutes": 30}]
    world.resident("R-call", LANDLINE_LOCAL, language=language)
    start_round_for(world, "R-call", plan=plan)
    world.tick()
    [call] = outbox_to(world.engine, LANDLINE)
    assert call.channel == "call" and call.sid
    return call


def answered(call: OutboxMessage, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call.sid or "",
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": LANDLINE,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "AnsweredBy": "human",
        **extra,
    }


def post_twiml(world: World, path: str, params: dict[str, str]) -> ET.Element:
    response = world.client.post(path, data=params, headers=signed_headers(path, params))
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return root


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def audio_url(built: Path, code: str, name: str) -> str:
    manifest = json.loads((built / audio.MANIFEST).read_text(encoding="utf-8"))
    version = manifest[code]["files"][name]["sha256"][:12]
    return f"{get_settings().public_url}/audio/{code}/{name}?v={version}"


def test_nepali_call_plays_the_built_prompts_and_says_the_name_in_a_japanese_voice(
    voice_env: Path, built: Path, world: World
) -> None:
    call = call_for(world, "ne")
    root = post_twiml(world, f"/twilio/voice?attempt={call.id}", answered(call))

    assert [child.tag for child in root] == ["Play", "Say", "Play", "Gather", "Play", "Hangup"]
    assert root[0].text == audio_url(built, "ne", "voice.greeting.0.wav")
    assert (root[1].text, root[1].get("voice"), root[1].get("language")) == (
        ORG,
        "Polly.Mizuki",
        "ja-JP",
    )
    assert root[2].text == audio_url(built, "ne", "voice.greeting.1.wav")
    gather = root[3]
    assert (gather.get("input"), gather.get("numDigits")) == ("dtmf", "1")
    assert [child.tag for child in gather] == ["Play", "Pause", "Play"]
    menu = audio_url(built, "ne", "voice.menu.wav")
    assert [child.text for child in gather.findall("Play")] == [menu, menu]
    assert root[4].text == audio_url(built, "ne", "voice.no_input.wav")

    # Every URL in the call is fetched by Twilio without a login: it must be served.
    for play in root.iter("Play"):
        assert play.text is not None and play.text.startswith(get_settings().public_url + "/")
        response = world.client.get(local(play.text))
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        assert "max-age" in response.headers["cache-control"]
        name = urlsplit(play.text).path.rsplit("/", 1)[1]
        assert response.content == (built / "ne" / name).read_bytes()
        assert audio.wav_info(response.content).seconds > 0.5
        head = world.client.head(local(play.text))
        assert head.status_code == 200 and head.headers["content-type"] == "audio/wav"

    # The keypad works as before: 1 closes the check-in, and the thanks is in Nepali.
    gathered = post_twiml(
        world, f"/twilio/voice/gather?attempt={call.id}", answered(call, Digits="1")
    )
    assert [child.tag for child in gathered] == ["Play", "Hangup"]
    assert gathered[0].text == audio_url(built, "ne", "voice.thanks.wav")
    assert checkin_of(world.engine, world.residents["R-call"]).state == CheckInState.ok


def test_khmer_call_without_prompts_is_said_in_easy_japanese(voice_env: Path, world: World) -> None:
    call = call_for(world, "km")
    root = post_twiml(world, f"/twilio/voice?attempt={call.id}", answered(call))
    assert not list(root.iter("Play"))
    says = list(root.iter("Say"))
    assert says and {(s.get("language"), s.get("voice")) for s in says} == {
        ("ja-JP", "Polly.Mizuki")
    }


def test_operator_recordings_and_urls_override_the_built_prompts(
    voice_env: Path, built: Path, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = record(voice_env / "ne" / "voice.menu.wav")
    call = call_for(world, "ne")
    root = post_twiml(world, f"/twilio/voice?attempt={call.id}", answered(call))
    plays = root.find("Gather").findall("Play")  # type: ignore[union-attr]
    assert plays[0].text != audio_url(built, "ne", "voice.menu.wav")
    response = world.client.get(local(plays[0].text or ""))
    assert response.status_code == 200 and response.content == recording.read_bytes()
    # The greeting has no recording: still the built pieces.
    assert root[0].text == audio_url(built, "ne", "voice.greeting.0.wav")

    mapped = "https://audio.example.org/ne-menu.mp3"
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"ne": {"voice.menu": mapped}}), encoding="utf-8")
    monkeypatch.setenv(AUDIO_MAP_ENV, str(mapping))
    root = post_twiml(world, f"/twilio/voice?attempt={call.id}", answered(call))
    assert [p.text for p in root.find("Gather").findall("Play")] == [mapped, mapped]  # type: ignore[union-attr]


def test_an_mp3_recording_is_served_as_audio_mpeg(voice_env: Path, world: World) -> None:
    # Content is not checked by the route; the extension decides the content type.
    (voice_env / "km").mkdir()
    (voice_env / "km" / "voice.menu.mp3").write_bytes(b"ID3fake-mp3")
    prompt = voice_prompt(
        "voice.menu", "km", public_url="https://x.example", recordings_dir=voice_env
    )
    assert prompt.source == "recording" and prompt.audio_url is not None
    response = world.client.get(local(prompt.audio_url))
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"


@pytest.mark.parametrize(
    "path",
    [
        "/audio/ne/..%2F..%2F..%2Fetc%2Fpasswd",
        "/audio/ne/..%2Fmanifest.json",
        "/audio/%2e%2e/manifest.json",
        "/audio/ne/manifest.json",
        "/audio/ne/voice.menu.wav%00.txt",
        "/audio/ne/voice.menu.wav.bak",
        "/audio/ne/voice.menu.mp3",
        "/audio/ne/voice.greeting.wav",
        "/audio/ne/voice.greeting.7.wav",
        "/audio/ne/resident.checkin.wav",
        "/audio/xx/voice.menu.wav",
        "/audio/km/voice.menu.wav",
        "/audio/NE/voice.menu.wav",
        "/audio/ne",
    ],
)
def test_anything_but_a_known_prompt_file_is_not_found(
    voice_env: Path, world: World, path: str
) -> None:
    (voice_env / "ne").mkdir(exist_ok=True)
    (voice_env / "ne" / "voice.menu.wav.bak").write_bytes(b"RIFF")
    response = world.client.get(path)
    # A NUL character is refused at the door for every route (422 naming it), before routing.
    expected = 422 if "%00" in path else 404
    assert response.status_code == expected, (path, response.status_code)
    assert b"RIFF" not in response.content


def test_member_alert_prompt_says_the_name_and_the_case_code_between_pieces(built: Path) -> None:
    prompt = voice_prompt(
        "voice.alert",
        "ne",
        public_url="https://x.example",
        prompts_dir=built,
        recordings_dir=None,
        org=ORG,
        code="A7",
    )
    assert [bool(part.audio_url) for part in prompt.parts] == [True, False, True, False, True]
    assert (prompt.parts[1].text, prompt.parts[1].say_language) == (ORG, "ja-JP")
    assert prompt.parts[3].text == "A7" and (prompt.parts[3].say_language or "").startswith("en")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MIMAMORI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250", **env},
    )


def test_i18n_status_says_how_each_language_is_spoken(built: Path, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    record(recordings / "km" / "voice.menu.wav")
    env = {
        audio.PROMPTS_DIR_ENV: str(built),
        audio.RECORDINGS_DIR_ENV: str(recordings),
        "MIMAMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'status.db'}",
    }
    result = run_cli("i18n", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["code"]: row for row in json.loads(result.stdout)}
    assert rows["ne"]["call_spoken"] == "engine" and rows["ne"]["call_fallback"] is None
    assert rows["ne"]["call_engine"] == "espeak-ng:ne"
    assert rows["vi"]["call_spoken"] == "twilio_voice" and rows["vi"]["call_fallback"] is None
    assert rows["km"]["call_spoken"] == "mixed" and rows["km"]["call_fallback"] == "easy_ja"
    assert rows["km"]["call_prompts"]["voice.menu"] == "recording"
    assert rows["km"]["call_engine"] is None
    # si was not built in this folder: said in Easy Japanese, and status says it could be.
    assert rows["si"]["call_spoken"] == "easy_japanese" and rows["si"]["call_engine"]

    table = run_cli("i18n", "status", env=env)
    assert table.returncode == 0, table.stderr
    lines = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if "│" in line}
    assert "espeak-ng prompts" in lines["ne"]
    prompts = len(VOICE_IDS)
    assert f"recordings 1/{prompts}" in lines["km"]
    assert f"Easy Japanese {prompts - 1}/{prompts}" in lines["km"]
    assert "not built" in table.stdout


def test_build_audio_command_writes_the_prompts(tmp_path: Path) -> None:
    out = tmp_path / "prompts"
    result = run_cli("i18n", "build-audio", "--out", str(out), "--language", "si", env={})
    assert result.returncode == 0, result.stderr
    assert "si" in result.stdout
    assert audio.wav_info((out / "si" / "voice.menu.wav").read_bytes()).seconds > 1
    refused = run_cli("i18n", "build-audio", "--out", str(out), "--language", "km", env={})
    assert refused.returncode == 1 and "km" in refused.stderr


def test_simulate_call_shows_played_prompts_in_the_spoken_order(built: Path) -> None:
    from service.cli import _twiml_text
    from service.telephony import twiml

    def prompt(prompt_id: str, **values: object) -> object:
        return voice_prompt(
            prompt_id, "ne", public_url="https://x.example", prompts_dir=built, **values
        )

    greeting = prompt("voice.greeting", org=ORG)
    first, _name, second = greeting.parts  # type: ignore[attr-defined]
    shown = _twiml_text(twiml.gather_result(greeting))  # type: ignore[arg-type]
    assert shown == f"[audio {first.audio_url}] {ORG} [audio {second.audio_url}]"
