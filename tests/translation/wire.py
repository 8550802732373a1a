"""A fake translation memory behind the mocked wires: it answers each text it knows and
fails the test on any text it was not told about (so a name, a number or a "1" that reached
the translator is caught)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import responses

from tests.translation.conftest import DEEPL_URL, GOOGLE_URL


class Memory:
    def __init__(self, known: dict[str, tuple[str, str]]) -> None:
        self.known = known
        self.sent: list[list[str]] = []
        self.targets: list[str] = []

    def _answer(self, texts: list[str], target: str) -> list[tuple[str, str]]:
        unexpected = [t for t in texts if t not in self.known]
        assert not unexpected, f"sent to the translator but not free text: {unexpected!r}"
        self.sent.append(texts)
        self.targets.append(target)
        return [self.known[t] for t in texts]

    def deepl(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        pairs = self._answer(body["text"], body["target_lang"])
        payload = {
            "translations": [
                {"detected_source_language": lang.upper(), "text": text, "billed_characters": 1}
                for text, lang in pairs
            ]
        }
        return 200, {}, json.dumps(payload)

    def google(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        pairs = self._answer(body["contents"], body["targetLanguageCode"])
        return httpx.Response(
            200,
            json={
                "translations": [
                    {"translatedText": text, "detectedLanguageCode": lang} for text, lang in pairs
                ]
            },
        )

    def on_deepl(self, wire: responses.RequestsMock) -> Memory:
        wire.add_callback(responses.POST, DEEPL_URL, callback=self.deepl)
        return self

    def on_google(self, wire: Any) -> Memory:
        wire.post(GOOGLE_URL).mock(side_effect=self.google)
        return self
