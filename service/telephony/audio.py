"""``GET /audio/<language>/<file>``: the voice prompts a call plays with ``<Play>``.

Public, because Twilio fetches ``<Play>`` URLs without our login and without a signature.
That is safe only because nothing here is personal: the files are catalog texts spoken by
espeak-ng at build time, or an operator's recordings of the same prompts. The language
must be a registered code and the file name a known prompt id (``voice.menu.wav``,
``voice.greeting.0.wav``); anything else, including any attempt to climb out of the
folders, is a plain 404.

URLs carry a content hash (``?v=``) made when the TwiML is built, so the long cache
lifetime below is safe: a replaced recording gets a new URL, and Twilio fetches it anew.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from i18n import audio
from service.config import get_settings

router = APIRouter(tags=["voice prompts"])

# A week: Twilio caches by URL and obeys these headers; the ?v= hash changes with the file.
CACHE_CONTROL = "public, max-age=604800"


@router.api_route("/audio/{language}/{name}", methods=["GET", "HEAD"], include_in_schema=False)
def voice_prompt_audio(language: str, name: str) -> FileResponse:
    settings = get_settings()
    found = audio.find_served_file(
        language,
        name,
        recordings=audio.recordings_dir(settings.voice_audio_dir),
        built=audio.prompts_dir(settings.voice_prompts_dir),
    )
    if found is None:
        raise HTTPException(status_code=404, detail="no such voice prompt")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL})
