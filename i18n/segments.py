"""How many SMS segments a text costs.

Carriers split a long SMS into segments and Twilio bills each one; some handsets
reassemble badly, so resident messages are kept to a few segments. One character outside
the GSM-7 alphabet (any Japanese, a Vietnamese tone mark, an emoji) switches the whole
message to UCS-2 and cuts a segment from 160 to 70 units, which is why the encoding is
computed from the final rendered text, never assumed from the language.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (one septet each). ESC (0x1B) is left out on purpose: it
# only introduces the extension table and is never sent as a character by itself.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs ESC + the character, so two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE_SEGMENT = 160
GSM7_MULTI_SEGMENT = 153  # 7 septets go to the concatenation header
UCS2_SINGLE_SEGMENT = 70
UCS2_MULTI_SEGMENT = 67


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """Encoding, length in that encoding's units, and segment count of one SMS body."""

    encoding: Encoding
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def _gsm7_weights(text: str) -> list[int]:
    return [2 if char in GSM7_EXTENSION else 1 for char in text]


def _ucs2_weights(text: str) -> list[int]:
    # Characters outside the Basic Multilingual Plane (most emoji) need a UTF-16
    # surrogate pair: two code units.
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def _pack(weights: list[int], single: int, multi: int) -> int:
    """Count segments the way a sender splits them.

    An escape sequence or a surrogate pair is never split across two segments, so a
    long text can need one more segment than ``ceil(units / multi)`` suggests.
    """
    total = sum(weights)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments = 1
    used = 0
    for weight in weights:
        if used + weight > multi:
            segments += 1
            used = 0
        used += weight
    return segments


def sms_segments(text: str) -> SegmentInfo:
    """Encoding, unit count and segment count for ``text`` sent as one SMS.

    An empty body has zero segments; callers should not send one.
    """
    if is_gsm7(text):
        weights = _gsm7_weights(text)
        return SegmentInfo(
            encoding="GSM-7",
            units=sum(weights),
            segments=_pack(weights, GSM7_SINGLE_SEGMENT, GSM7_MULTI_SEGMENT),
        )
    weights = _ucs2_weights(text)
    return SegmentInfo(
        encoding="UCS-2",
        units=sum(weights),
        segments=_pack(weights, UCS2_SINGLE_SEGMENT, UCS2_MULTI_SEGMENT),
    )


def combined_encoding(encodings: Iterable[Encoding]) -> Encoding:
    """The encoding a set of messages needs: UCS-2 as soon as one of them does."""
    return "UCS-2" if any(encoding == "UCS-2" for encoding in encodings) else "GSM-7"
