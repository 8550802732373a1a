"""Parse the Japan Meteorological Agency's disaster-prevention XML (気象庁防災情報XML).

Only the three bulletins that can trigger an on-demand welfare check are understood:
VXSE51 (震度速報), VXSE53 (震源・震度に関する情報) and VTSE41 (津波警報・注意報・予報),
plus the Atom feed (eqvol.xml) that announces them.

Everything here is a pure function over bytes. The input comes from the network, so it is
parsed with defusedxml (no DTDs, no entities, no external references), and every way it
can be wrong surfaces as one exception type, `BulletinError`, so that a poller can log the
problem and carry on instead of crashing on an exception it did not expect.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Bulletin",
    "BulletinError",
    "BulletinKind",
    "BulletinStatus",
    "Earthquake",
    "FeedEntry",
    "InfoType",
    "Intensity",
    "TsunamiKind",
    "parse_atom_feed",
    "parse_bulletin",
]

# The largest real bulletin we know of (VXSE53 for 2011-03-11) is about 400 kB. A cap well
# above that keeps a hostile or broken upstream from making us hold gigabytes in memory.
MAX_DOCUMENT_BYTES: Final = 8 * 1024 * 1024

_JMX_NAMESPACE_PREFIX: Final = "http://xml.kishou.go.jp/jmaxml1/"
_HEAD_NAMESPACE: Final = _JMX_NAMESPACE_PREFIX + "informationBasis1/"
_BODY_NAMESPACE_PREFIX: Final = _JMX_NAMESPACE_PREFIX + "body/"
_ATOM_NAMESPACE: Final = "http://www.w3.org/2005/Atom"
_UNRECEIVED_MARKER: Final = "未入電"


class BulletinError(ValueError):
    """The one error a caller has to handle: the document cannot be trusted as a bulletin.

    It subclasses ValueError so that generic "bad input" handlers also catch it.
    """


# --------------------------------------------------------------------------- enums


class BulletinKind(StrEnum):
    """The JMA data-type code; a StrEnum so it compares equal to "VXSE51" and friends."""

    VXSE51 = "VXSE51"
    VXSE53 = "VXSE53"
    VTSE41 = "VTSE41"


class BulletinStatus(StrEnum):
    """Control/Status. Drills and tests must never start a real welfare round."""

    REAL = "real"
    DRILL = "drill"
    TEST = "test"


class InfoType(StrEnum):
    """Head/InfoType. A cancellation withdraws every earlier bulletin with the same EventID."""

    ISSUED = "issued"
    CORRECTED = "corrected"
    CANCELLED = "cancelled"


_STATUS_BY_JMA_LABEL: Final = {
    "通常": BulletinStatus.REAL,
    "訓練": BulletinStatus.DRILL,
    "試験": BulletinStatus.TEST,
}
_INFO_TYPE_BY_JMA_LABEL: Final = {
    "発表": InfoType.ISSUED,
    "訂正": InfoType.CORRECTED,
    "取消": InfoType.CANCELLED,
}


class TsunamiKind(IntEnum):
    """Tsunami warning kind per forecast area, ordered by how much danger is in effect.

    The two "lifted" kinds sit below FORECAST: once lifted, nothing is in effect, so a
    policy asking `kind >= TsunamiKind.WARNING` (or `>= ADVISORY`) is never triggered by a
    lifting. The gaps between values leave room for kinds JMA may add later.
    """

    NONE = 0
    ADVISORY_LIFTED = 10
    WARNING_LIFTED = 20
    FORECAST = 30
    ADVISORY = 40
    WARNING = 50
    MAJOR_WARNING = 60

    @property
    def is_lifted(self) -> bool:
        return self in (TsunamiKind.ADVISORY_LIFTED, TsunamiKind.WARNING_LIFTED)

    @classmethod
    def from_jma(cls, code: str | None, name: str | None) -> TsunamiKind:
        """Map 警報等情報要素／津波警報・注意報・予報 by code, falling back to the name.

        The code is authoritative because names carry suffixes (大津波警報：発表) and
        qualifiers (［津波警報解除］) that differ between format versions.
        """
        code = (code or "").strip()
        if code in _TSUNAMI_KIND_BY_CODE:
            return _TSUNAMI_KIND_BY_CODE[code]
        kind = _tsunami_kind_from_name(name or "")
        if kind is None:
            raise BulletinError(f"unknown tsunami kind: code {code!r}, name {name!r}")
        return kind


_TSUNAMI_KIND_BY_CODE: Final = {
    "00": TsunamiKind.NONE,  # 津波なし
    "50": TsunamiKind.WARNING_LIFTED,  # 警報解除
    "51": TsunamiKind.WARNING,  # 津波警報
    "52": TsunamiKind.MAJOR_WARNING,  # 大津波警報
    "53": TsunamiKind.MAJOR_WARNING,  # 大津波警報：発表 (newly issued)
    "60": TsunamiKind.ADVISORY_LIFTED,  # 津波注意報解除
    "62": TsunamiKind.ADVISORY,  # 津波注意報
    "71": TsunamiKind.FORECAST,  # 津波予報（若干の海面変動）
    "72": TsunamiKind.FORECAST,  # 津波予報（若干の海面変動）［津波警報解除］
    "73": TsunamiKind.FORECAST,  # 津波予報（若干の海面変動）［津波注意報解除］
}


def _tsunami_kind_from_name(name: str) -> TsunamiKind | None:
    # Order matters: "津波予報（…）［津波警報解除］" mentions both 警報 and 解除, and
    # "大津波警報" contains "津波警報".
    name = unicodedata.normalize("NFKC", name).strip()
    if not name:
        return None
    if name.startswith("津波予報"):
        return TsunamiKind.FORECAST
    if name.startswith("大津波警報"):
        return TsunamiKind.MAJOR_WARNING
    if "解除" in name:
        return TsunamiKind.ADVISORY_LIFTED if "注意報" in name else TsunamiKind.WARNING_LIFTED
    if name.startswith("津波注意報"):
        return TsunamiKind.ADVISORY
    if name.startswith("津波警報"):
        return TsunamiKind.WARNING
    if name == "津波なし":
        return TsunamiKind.NONE
    return None


# --------------------------------------------------------------------------- intensity

_SCALE: Final = ("1", "2", "3", "4", "5-", "5+", "6-", "6+", "7")
_RANK: Final = {value: rank for rank, value in enumerate(_SCALE)}


@dataclass(frozen=True, slots=True, eq=True)
class Intensity:
    """A JMA seismic intensity (震度) on the 1..7 scale, ordered.

    `unreceived=True` stands for 震度５弱以上未入電: a station that probably shook at 5-lower
    or more has not reported yet. It is only ever created with value "5-", and it sorts just
    above a confirmed 5- and below 5+, so `intensity >= Intensity("5-")` holds for it and a
    welfare policy errs on the side of checking on people.
    """

    value: str
    unreceived: bool = False

    def __post_init__(self) -> None:
        if self.value not in _RANK:
            raise ValueError(f"not a JMA intensity: {self.value!r} (expected one of {_SCALE})")
        if self.unreceived and self.value != "5-":
            raise ValueError("an unreceived intensity is always '5-' (5-lower or stronger)")

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    def _key(self) -> tuple[int, bool]:
        return (_RANK[self.value], self.unreceived)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Intensity):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Intensity):
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Intensity):
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Intensity):
            return NotImplemented
        return self._key() >= other._key()

    def __str__(self) -> str:
        return "5-?" if self.unreceived else self.value

    @classmethod
    def parse(cls, text: str) -> Intensity:
        """Read "5-", "5+", "震度６弱", "6弱" or "震度５弱以上未入電".

        Raises BulletinError rather than ValueError's plain form, because the text always
        comes from a bulletin and the caller handles one error type.
        """
        raw = text
        text = unicodedata.normalize("NFKC", text or "").strip()
        if _UNRECEIVED_MARKER in text:
            return cls("5-", unreceived=True)
        if text.startswith("震度"):
            text = text[2:].strip()
        text = text.replace("弱", "-").replace("強", "+")
        if text not in _RANK:
            raise BulletinError(f"unknown seismic intensity {raw!r}")
        return cls(text)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Earthquake:
    """The hypocentre part of a bulletin; magnitude is None when JMA gives NaN (unknown)."""

    origin_time: datetime | None
    arrival_time: datetime | None
    hypocenter_name: str | None
    hypocenter_code: str | None
    magnitude: float | None
    magnitude_description: str | None
    magnitude_type: str | None


def _frozen_mapping() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Bulletin:
    """One parsed bulletin.

    The mappings are read-only views so that a Bulletin handed to several policies cannot
    be altered by one of them. For a cancelled bulletin they are always empty: whatever the
    body says, it no longer describes anything in effect.
    """

    kind: BulletinKind
    title: str
    control_title: str
    event_id: str
    report_datetime: datetime
    target_datetime: datetime | None
    status: BulletinStatus
    info_type: InfoType
    serial: int | None
    headline: str
    earthquake: Earthquake | None = None
    max_intensity: Intensity | None = None
    area_intensities: Mapping[str, Intensity] = field(default_factory=_frozen_mapping)
    area_names: Mapping[str, str] = field(default_factory=_frozen_mapping)
    city_intensities: Mapping[str, Intensity] = field(default_factory=_frozen_mapping)
    city_names: Mapping[str, str] = field(default_factory=_frozen_mapping)
    tsunami: Mapping[str, TsunamiKind] = field(default_factory=_frozen_mapping)
    tsunami_area_names: Mapping[str, str] = field(default_factory=_frozen_mapping)

    @property
    def is_real(self) -> bool:
        return self.status is BulletinStatus.REAL

    @property
    def is_cancelled(self) -> bool:
        return self.info_type is InfoType.CANCELLED

    @property
    def max_tsunami(self) -> TsunamiKind | None:
        return max(self.tsunami.values(), default=None)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One Atom entry: link_url is where the bulletin XML itself is fetched from."""

    id: str
    title: str
    updated: datetime
    link_url: str


# --------------------------------------------------------------------------- XML helpers


def _local(tag: object) -> str:
    # Comments and processing instructions have a callable tag; they match nothing.
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _children(element: Element | None, name: str) -> Iterator[Element]:
    """Direct children by local name.

    JMA puts Head, Body and the element-basis types in different namespaces, and the
    prefixes (jmx_ib, jmx_seis, jmx_eb…) are only conventions; matching by local name keeps
    us working whichever prefix or default namespace a sender chooses.
    """
    if element is None:
        return
    for child in element:
        if _local(child.tag) == name:
            yield child


def _child(element: Element | None, *path: str) -> Element | None:
    current = element
    for name in path:
        current = next(_children(current, name), None)
        if current is None:
            return None
    return current


def _text(element: Element | None, *path: str) -> str | None:
    """Stripped text at path, or None when the element is absent or empty."""
    found = _child(element, *path)
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return text or None


def _required_text(element: Element | None, where: str, *path: str) -> str:
    text = _text(element, *path)
    if text is None:
        raise BulletinError(f"missing required element {where}/{'/'.join(path)}")
    return text


def _datetime(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BulletinError(f"{what} is not an ISO 8601 date-time: {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise BulletinError(f"{what} has no time zone: {text!r}")
    return value


def _optional_datetime(element: Element | None, what: str, *path: str) -> datetime | None:
    text = _text(element, *path)
    return None if text is None else _datetime(text, what)


def _parse_xml(data: bytes | bytearray | memoryview | str, what: str) -> Element:
    if isinstance(data, memoryview | bytearray):
        data = bytes(data)
    if not isinstance(data, bytes | str):
        raise BulletinError(f"{what} must be bytes or str, not {type(data).__name__}")
    # len() of a str counts characters, never more than its UTF-8 bytes, so checking it
    # first avoids encoding a huge string just to learn that it is too large.
    size = len(data)
    if size <= MAX_DOCUMENT_BYTES and isinstance(data, str):
        size = len(data.encode("utf-8", errors="replace"))
    if size > MAX_DOCUMENT_BYTES:
        raise BulletinError(f"{what} is too large ({size} bytes, limit {MAX_DOCUMENT_BYTES})")
    if not data.strip():
        raise BulletinError(f"{what} is empty")
    try:
        # forbid_dtd: JMA documents never carry a DTD, so any DTD is refused outright,
        # which also rules out entity-expansion bombs and external entities.
        return _defused_fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise BulletinError(f"{what} uses a forbidden XML feature: {exc}") from None
    except ParseError as exc:
        raise BulletinError(f"{what} is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # e.g. an encoding expat does not know
        raise BulletinError(f"{what} cannot be decoded: {exc}") from None


# --------------------------------------------------------------------------- bulletins

_KIND_BY_CONTROL_TITLE: Final = {
    "震度速報": BulletinKind.VXSE51,
    "震源・震度に関する情報": BulletinKind.VXSE53,
    "津波警報・注意報・予報a": BulletinKind.VTSE41,
    "津波警報・注意報・予報": BulletinKind.VTSE41,
}
_KIND_BY_INFO_KIND: Final = {
    "震度速報": BulletinKind.VXSE51,
    "津波警報・注意報・予報": BulletinKind.VTSE41,
    # "地震情報" is shared by VXSE52 and VXSE53, so it cannot decide on its own.
}
_AREA_CODE_TYPE: Final = "地震情報／細分区域"
_CITY_CODE_TYPE: Final = "気象・地震・火山情報／市町村等"


def _require_namespace(
    element: Element, where: str, expected: str, *, prefix: bool = False
) -> None:
    """Report, Control, Head and Body must be in JMA's namespaces, as every real bulletin is.

    Elements are found by local name (see ``_children``), so without this check a document
    with every namespace stripped, or in somebody else's, would pass for a bulletin.
    """
    namespace = _namespace(element.tag)
    ok = namespace.startswith(expected) if prefix else namespace == expected
    if not ok:
        found = f"namespace {namespace!r}" if namespace else "no namespace"
        raise BulletinError(f"<{where}> is in {found}, not JMA's ({expected})")


def parse_bulletin(data: bytes | str) -> Bulletin:
    """Parse one VXSE51, VXSE53 or VTSE41 document.

    Raises BulletinError, and only BulletinError, when the document is not XML, uses a
    forbidden XML feature, is not a JMA report, is of another kind, or lacks an element the
    welfare policy depends on.
    """
    try:
        return _parse_bulletin(data)
    except BulletinError:
        raise
    except Exception as exc:  # the promise is "only BulletinError"
        # A bug or an input shape nobody foresaw must not crash the poller; the chained
        # cause keeps the traceback for whoever investigates.
        raise BulletinError(f"unexpected {type(exc).__name__} while parsing: {exc}") from exc


def _parse_bulletin(data: bytes | str) -> Bulletin:
    root = _parse_xml(data, "bulletin")
    if _local(root.tag) != "Report":
        raise BulletinError(f"root element is <{_local(root.tag) or root.tag}>, not <Report>")
    _require_namespace(root, "Report", _JMX_NAMESPACE_PREFIX)

    control = _child(root, "Control")
    head = _child(root, "Head")
    body = _child(root, "Body")
    if control is None:
        raise BulletinError("missing required element Report/Control")
    if head is None:
        raise BulletinError("missing required element Report/Head")
    _require_namespace(control, "Control", _JMX_NAMESPACE_PREFIX)
    _require_namespace(head, "Head", _HEAD_NAMESPACE)
    if body is not None:
        _require_namespace(body, "Body", _BODY_NAMESPACE_PREFIX, prefix=True)

    control_title = _required_text(control, "Control", "Title")
    status_label = _required_text(control, "Control", "Status")
    status = _STATUS_BY_JMA_LABEL.get(status_label)
    if status is None:
        raise BulletinError(f"unknown Control/Status {status_label!r}")

    info_type_label = _required_text(head, "Head", "InfoType")
    info_type = _INFO_TYPE_BY_JMA_LABEL.get(info_type_label)
    if info_type is None:
        raise BulletinError(f"unknown Head/InfoType {info_type_label!r}")

    report_datetime = _datetime(
        _required_text(head, "Head", "ReportDateTime"), "Head/ReportDateTime"
    )
    target_datetime = _optional_datetime(head, "Head/TargetDateTime", "TargetDateTime")
    event_id = _required_text(head, "Head", "EventID")
    serial = _serial(_text(head, "Serial"))
    head_title = _text(head, "Title") or control_title
    headline = _text(head, "Headline", "Text") or ""

    kind = _decide_kind(control_title, head, body)

    if body is None and info_type is not InfoType.CANCELLED:
        raise BulletinError("missing required element Report/Body")

    base = Bulletin(
        kind=kind,
        title=head_title,
        control_title=control_title,
        event_id=event_id,
        report_datetime=report_datetime,
        target_datetime=target_datetime,
        status=status,
        info_type=info_type,
        serial=serial,
        headline=headline,
    )
    if info_type is InfoType.CANCELLED:
        return base

    earthquake = _earthquake(_child(body, "Earthquake"))
    if kind is BulletinKind.VTSE41:
        tsunami, tsunami_names = _tsunami_forecast(body)
        return replace(
            base,
            earthquake=earthquake,
            tsunami=MappingProxyType(tsunami),
            tsunami_area_names=MappingProxyType(tsunami_names),
        )

    if kind is BulletinKind.VXSE53 and earthquake is None:
        raise BulletinError("missing required element Body/Earthquake in a VXSE53 bulletin")
    seismic = _SeismicIntensities()
    seismic.read_body(body)
    seismic.read_headline(head)
    # A VXSE53 about a distant earthquake (遠地地震) legitimately has no Body/Intensity; a
    # flash (VXSE51) exists only to report intensities, so without them it is broken.
    if seismic.max_intensity is None and kind is BulletinKind.VXSE51:
        raise BulletinError("VXSE51 bulletin reports no seismic intensity (no Body/Intensity)")
    return replace(
        base,
        earthquake=earthquake,
        max_intensity=seismic.max_intensity,
        area_intensities=MappingProxyType(seismic.areas),
        area_names=MappingProxyType(seismic.area_names),
        city_intensities=MappingProxyType(seismic.cities),
        city_names=MappingProxyType(seismic.city_names),
    )


def _serial(text: str | None) -> int | None:
    if text is None:
        return None
    normalized = unicodedata.normalize("NFKC", text)
    if not normalized.isdigit():
        raise BulletinError(f"Head/Serial is not a number: {text!r}")
    return int(normalized)


def _decide_kind(control_title: str, head: Element, body: Element | None) -> BulletinKind:
    """Control/Title first, Head/InfoKind second, then the shape of the body.

    Disagreement between the two labels is an error: it means the document is not what it
    claims to be, and guessing could turn a tsunami bulletin into an earthquake one.
    """
    by_title = _KIND_BY_CONTROL_TITLE.get(control_title)
    info_kind = _text(head, "InfoKind")
    by_info_kind = _KIND_BY_INFO_KIND.get(info_kind or "")
    if by_title and by_info_kind and by_title is not by_info_kind:
        raise BulletinError(
            f"Control/Title {control_title!r} contradicts Head/InfoKind {info_kind!r}"
        )
    if by_title:
        return by_title
    if by_info_kind:
        return by_info_kind
    if info_kind == "地震情報":
        head_title = _text(head, "Title")
        has_intensity = _child(body, "Intensity") is not None
        if head_title == "震源・震度情報" or (has_intensity and _child(body, "Earthquake")):
            return BulletinKind.VXSE53
    raise BulletinError(
        f"unsupported bulletin: Control/Title {control_title!r}, Head/InfoKind {info_kind!r} "
        "(only VXSE51, VXSE53 and VTSE41 are understood)"
    )


def _earthquake(element: Element | None) -> Earthquake | None:
    if element is None:
        return None
    hypocenter_area = _child(element, "Hypocenter", "Area")
    magnitude_element = _child(element, "Magnitude")
    magnitude: float | None = None
    description: str | None = None
    magnitude_type: str | None = None
    if magnitude_element is not None:
        description = (magnitude_element.get("description") or "").strip() or None
        magnitude_type = (magnitude_element.get("type") or "").strip() or None
        magnitude = _magnitude((magnitude_element.text or "").strip())
    return Earthquake(
        origin_time=_optional_datetime(element, "Earthquake/OriginTime", "OriginTime"),
        arrival_time=_optional_datetime(element, "Earthquake/ArrivalTime", "ArrivalTime"),
        hypocenter_name=_text(hypocenter_area, "Name"),
        hypocenter_code=_text(hypocenter_area, "Code"),
        magnitude=magnitude,
        magnitude_description=description,
        magnitude_type=magnitude_type,
    )


def _magnitude(text: str) -> float | None:
    # JMA writes NaN when the magnitude is unknown or too large to pin down
    # (e.g. "Ｍ８を超える巨大地震"); that is "unknown", never a number to compare.
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BulletinError(f"Earthquake/Magnitude is not a number: {text!r}") from None
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise BulletinError(f"Earthquake/Magnitude is not finite: {text!r}")
    return value


class _SeismicIntensities:
    """Accumulates the strongest intensity seen per area and per city.

    Several places describe the same area (Body observation, each of its cities and
    stations, the headline); taking the maximum of all of them means a missing or
    inconsistent element can only make us more cautious, never less.
    """

    def __init__(self) -> None:
        self.areas: dict[str, Intensity] = {}
        self.area_names: dict[str, str] = {}
        self.cities: dict[str, Intensity] = {}
        self.city_names: dict[str, str] = {}
        self.max_intensity: Intensity | None = None

    def _raise_max(self, intensity: Intensity | None) -> None:
        if intensity is not None and (self.max_intensity is None or intensity > self.max_intensity):
            self.max_intensity = intensity

    @staticmethod
    def _note(
        target: dict[str, Intensity],
        names: dict[str, str],
        code: str,
        name: str | None,
        intensity: Intensity | None,
    ) -> None:
        if name and code not in names:
            names[code] = name
        if intensity is not None and (code not in target or intensity > target[code]):
            target[code] = intensity

    def read_body(self, body: Element | None) -> None:
        for observation in _children(_child(body, "Intensity"), "Observation"):
            self._raise_max(_own_intensity(observation))
            for pref in _children(observation, "Pref"):
                pref_max = _own_intensity(pref)
                for area in _children(pref, "Area"):
                    pref_max = _max(pref_max, self._read_area(area))
                self._raise_max(pref_max)

    def _read_area(self, area: Element) -> Intensity | None:
        code = _text(area, "Code")
        if code is None:
            raise BulletinError("Body/Intensity/.../Area has no Code")
        strongest = _own_intensity(area)
        for city in _children(area, "City"):
            strongest = _max(strongest, self._read_city(city))
        if strongest is None:
            raise BulletinError(f"Area {code} carries no intensity")
        self._note(self.areas, self.area_names, code, _text(area, "Name"), strongest)
        return strongest

    def _read_city(self, city: Element) -> Intensity | None:
        code = _text(city, "Code")
        if code is None:
            raise BulletinError("Body/Intensity/.../City has no Code")
        strongest = _own_intensity(city)
        for station in _children(city, "IntensityStation"):
            station_text = _text(station, "Int")
            if station_text is not None:
                strongest = _max(strongest, Intensity.parse(station_text))
            strongest = _max(strongest, _condition(station))
        if strongest is None:
            raise BulletinError(f"City {code} carries no intensity")
        self._note(self.cities, self.city_names, code, _text(city, "Name"), strongest)
        return strongest

    def read_headline(self, head: Element) -> None:
        for information in _children(_child(head, "Headline"), "Information"):
            for item in _children(information, "Item"):
                kind_name = _text(item, "Kind", "Name")
                if kind_name is None:
                    continue
                intensity = Intensity.parse(kind_name)
                for areas in _children(item, "Areas"):
                    code_type = (areas.get("codeType") or "").strip()
                    if code_type == _AREA_CODE_TYPE:
                        target, names = self.areas, self.area_names
                    elif code_type == _CITY_CODE_TYPE:
                        target, names = self.cities, self.city_names
                    else:
                        continue
                    for area in _children(areas, "Area"):
                        code = _text(area, "Code")
                        if code is None:
                            raise BulletinError("Head/Headline/.../Area has no Code")
                        self._note(target, names, code, _text(area, "Name"), intensity)
                        self._raise_max(intensity)


def _own_intensity(element: Element) -> Intensity | None:
    """MaxInt and Condition of one element (not its descendants)."""
    max_int = _text(element, "MaxInt")
    own = Intensity.parse(max_int) if max_int is not None else None
    return _max(own, _condition(element))


def _condition(element: Element) -> Intensity | None:
    # <Condition>震度５弱以上未入電</Condition> sits next to (or instead of) MaxInt when a
    # station that likely shook hard has not reported. Other conditions say nothing about
    # strength and are ignored.
    condition = _text(element, "Condition")
    if condition and _UNRECEIVED_MARKER in condition:
        return Intensity("5-", unreceived=True)
    return None


def _max(*values: Intensity | None) -> Intensity | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def _tsunami_forecast(body: Element | None) -> tuple[dict[str, TsunamiKind], dict[str, str]]:
    forecast = _child(body, "Tsunami", "Forecast")
    if forecast is None:
        raise BulletinError("missing required element Body/Tsunami/Forecast in a VTSE41 bulletin")
    kinds: dict[str, TsunamiKind] = {}
    names: dict[str, str] = {}
    for item in _children(forecast, "Item"):
        area = _child(item, "Area")
        code = _text(area, "Code")
        if code is None:
            raise BulletinError("Body/Tsunami/Forecast/Item has no Area/Code")
        kind_element = _child(item, "Category", "Kind")
        if kind_element is None:
            raise BulletinError(f"tsunami area {code} has no Category/Kind")
        kind = TsunamiKind.from_jma(_text(kind_element, "Code"), _text(kind_element, "Name"))
        if code not in kinds or kind > kinds[code]:
            kinds[code] = kind
        name = _text(area, "Name")
        if name:
            names.setdefault(code, name)
    if not kinds:
        raise BulletinError("Body/Tsunami/Forecast lists no areas")
    return kinds, names


# --------------------------------------------------------------------------- Atom feed


def parse_atom_feed(data: bytes | str) -> list[FeedEntry]:
    """Parse JMA's Atom feed (e.g. eqvol.xml) into entries, in document order.

    Strict on purpose: a feed with one broken entry is refused as a whole with a message
    naming that entry, rather than silently skipping a bulletin that may matter.
    """
    try:
        return _parse_atom_feed(data)
    except BulletinError:
        raise
    except Exception as exc:  # the promise is "only BulletinError"
        raise BulletinError(f"unexpected {type(exc).__name__} while parsing feed: {exc}") from exc


def _parse_atom_feed(data: bytes | str) -> list[FeedEntry]:
    root = _parse_xml(data, "feed")
    if root.tag != f"{{{_ATOM_NAMESPACE}}}feed":
        raise BulletinError(f"root element is {root.tag!r}, not an Atom <feed>")
    return [_feed_entry(entry, index) for index, entry in enumerate(_children(root, "entry"))]


def _feed_entry(entry: Element, index: int) -> FeedEntry:
    where = f"feed entry #{index}"
    entry_id = _text(entry, "id")
    if entry_id is None:
        raise BulletinError(f"{where} has no <id>")
    where = f"{where} ({entry_id})"
    title = _text(entry, "title")
    if title is None:
        raise BulletinError(f"{where} has no <title>")
    updated_text = _text(entry, "updated")
    if updated_text is None:
        raise BulletinError(f"{where} has no <updated>")
    updated = _datetime(updated_text, f"{where} <updated>")
    link_url = _bulletin_link(_children(entry, "link"), where)
    return FeedEntry(id=entry_id, title=title, updated=updated, link_url=link_url)


def _bulletin_link(links: Iterable[Element], where: str) -> str:
    # JMA gives each entry one <link type="application/xml" href="…"/>; an "alternate" (or
    # rel-less) link is the Atom way of saying the same, so either is accepted.
    candidates: list[str] = []
    for link in links:
        rel = (link.get("rel") or "alternate").strip()
        href = (link.get("href") or "").strip()
        if rel == "alternate" and href:
            candidates.append(href)
    if not candidates:
        raise BulletinError(f"{where} has no <link href> to a bulletin")
    href = candidates[0]
    parts = urlsplit(href)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The URL will be fetched by the poller; refusing file:, data: and friends keeps
        # a tampered feed from pointing us at local files.
        raise BulletinError(f"{where} links to a non-HTTP URL: {href!r}")
    return href
