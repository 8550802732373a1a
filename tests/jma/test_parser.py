"""The JMA parser decides whether a quake or tsunami starts a welfare round, so these tests
pin the facts in JMA's own documents and every way a document can be bad."""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.jma import (
    MAX_DOCUMENT_BYTES,
    Bulletin,
    BulletinError,
    BulletinKind,
    BulletinStatus,
    FeedEntry,
    InfoType,
    Intensity,
    TsunamiKind,
    parse_atom_feed,
    parse_bulletin,
)
from tests.jma.conftest import fixtures_root

JST = timezone(timedelta(hours=9))

VXSE51_2009 = "32-35_07_03_100915_VXSE51.xml"
VXSE53_2009 = "32-35_07_06_100915_VXSE53.xml"
VXSE53_2011 = "32-39_11_05_120615_VXSE53.xml"
VXSE53_2021 = "20210217140958_0_VXSE53_010000.xml"
VTSE41_2023 = "20231009072652_07314633_VTSE41.xml"
VTSE41_DRILL = "32-39_12_02_191025_VTSE41.xml"

EXPECTED_KIND = {
    VXSE51_2009: BulletinKind.VXSE51,
    VXSE53_2009: BulletinKind.VXSE53,
    VXSE53_2011: BulletinKind.VXSE53,
    VXSE53_2021: BulletinKind.VXSE53,
    VTSE41_2023: BulletinKind.VTSE41,
    VTSE41_DRILL: BulletinKind.VTSE41,
}

Loader = Callable[[str], bytes]


def replace_once(data: bytes, old: str, new: str) -> bytes:
    """Edit a fixture in memory, failing loudly if the fixture no longer has that text."""
    encoded = old.encode()
    assert data.count(encoded) == 1, f"expected exactly one {old!r} in the fixture"
    return data.replace(encoded, new.encode())


def shindo(value: str) -> Intensity:
    return Intensity(value)


# --------------------------------------------------------------------------- every fixture


@pytest.mark.parametrize("name", sorted(EXPECTED_KIND))
def test_every_fixture_parses_with_its_kind_and_aware_times(jma_bytes: Loader, name: str) -> None:
    bulletin = parse_bulletin(jma_bytes(name))
    assert bulletin.kind == EXPECTED_KIND[name]
    assert bulletin.kind.value in name
    assert bulletin.info_type is InfoType.ISSUED
    assert re.fullmatch(r"\d{14}", bulletin.event_id)
    assert bulletin.report_datetime.utcoffset() == timedelta(hours=9)
    assert bulletin.target_datetime is not None
    assert bulletin.target_datetime.tzinfo is not None
    assert bulletin.headline
    if bulletin.kind is BulletinKind.VTSE41:
        assert bulletin.tsunami and not bulletin.area_intensities
        assert bulletin.max_intensity is None
    else:
        assert bulletin.max_intensity is not None
        assert bulletin.area_intensities and not bulletin.tsunami
        assert bulletin.max_intensity == max(bulletin.area_intensities.values())
        assert set(bulletin.area_names) == set(bulletin.area_intensities)


def test_no_fixture_goes_untested() -> None:
    directory = fixtures_root() / "jma"
    if not directory.is_dir():
        pytest.skip(f"JMA fixtures directory not found at {directory}")
    present = {path.name for path in directory.glob("*.xml")}
    assert present == set(EXPECTED_KIND)


def test_text_input_parses_like_bytes(jma_bytes: Loader) -> None:
    data = jma_bytes(VXSE53_2021)
    assert parse_bulletin(data.decode("utf-8")) == parse_bulletin(data)


# --------------------------------------------------------------------------- VXSE51


def test_vxse51_2009_intensity_flash(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE51_2009))
    assert bulletin.kind == "VXSE51"
    assert bulletin.title == "震度速報"
    assert bulletin.status is BulletinStatus.REAL and bulletin.is_real
    assert bulletin.event_id == "20090811050711"
    assert bulletin.report_datetime == datetime(2009, 8, 11, 5, 9, tzinfo=JST)
    assert bulletin.target_datetime == datetime(2009, 8, 11, 5, 7, tzinfo=JST)
    assert bulletin.serial is None  # <Serial></Serial> in a flash
    assert bulletin.headline.startswith("１１日０５時０７分ころ")
    assert bulletin.earthquake is None  # a flash has no hypocentre yet
    assert bulletin.max_intensity == shindo("6-")
    assert bulletin.area_intensities["390"] == shindo("3")
    assert bulletin.area_names["390"] == "石川県能登"
    assert bulletin.area_intensities["440"] == shindo("6-")
    assert bulletin.area_intensities["441"] == shindo("5+")
    assert bulletin.area_intensities["422"] == shindo("5-")
    assert bulletin.area_intensities["420"] == shindo("3")
    assert bulletin.city_intensities == {}
    at_least_5_lower = {code for code, i in bulletin.area_intensities.items() if i >= shindo("5-")}
    assert at_least_5_lower == {"440", "441", "442", "443", "422"}


# --------------------------------------------------------------------------- VXSE53


def test_vxse53_2009_hypocentre_and_unreceived_cities(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE53_2009))
    assert bulletin.kind is BulletinKind.VXSE53
    assert bulletin.serial == 1
    quake = bulletin.earthquake
    assert quake is not None
    assert quake.origin_time == datetime(2009, 8, 11, 5, 7, tzinfo=JST)
    assert quake.hypocenter_name == "駿河湾"
    assert quake.hypocenter_code == "485"
    assert quake.magnitude == pytest.approx(6.6)
    assert quake.magnitude_description == "Ｍ６．６"
    assert bulletin.max_intensity == shindo("6-")
    assert bulletin.area_intensities["390"] == shindo("3")
    assert bulletin.city_intensities["2222200"] == shindo("6-")  # 伊豆市
    # 藤枝市 and 富士市 report MaxInt 4 next to <Condition>震度５弱以上未入電</Condition>.
    for city in ("2221400", "2221000"):
        intensity = bulletin.city_intensities[city]
        assert intensity == Intensity("5-", unreceived=True)
        assert intensity >= shindo("5-")
        assert intensity > shindo("4")
        assert intensity < shindo("5+")
    assert bulletin.city_names["2221400"] == "藤枝市"
    flagged = {code for code, i in bulletin.city_intensities.items() if i.unreceived}
    assert flagged == {"2221400", "2221000"}


def test_vxse53_2011_max_7_and_nan_magnitude_is_unknown(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    assert bulletin.max_intensity == shindo("7")
    assert bulletin.area_intensities["220"] == shindo("7")  # 宮城県北部
    assert bulletin.area_names["220"] == "宮城県北部"
    quake = bulletin.earthquake
    assert quake is not None
    assert quake.hypocenter_name == "三陸沖"
    assert quake.magnitude is None
    assert quake.magnitude_description == "Ｍ８を超える巨大地震"
    assert bulletin.report_datetime == datetime(2011, 3, 11, 14, 54, tzinfo=JST)


def test_vxse53_2021_real_bulletin_max_3(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE53_2021))
    assert bulletin.status is BulletinStatus.REAL
    assert bulletin.max_intensity == shindo("3")
    assert bulletin.area_intensities["222"] == shindo("3")  # 宮城県中部
    assert bulletin.area_intensities["251"] == shindo("3")  # 福島県浜通り
    assert bulletin.city_intensities["0420200"] == shindo("3")  # 石巻市
    assert bulletin.city_names["0754600"] == "双葉町"
    assert all(i <= shindo("3") for i in bulletin.area_intensities.values())
    assert not any(i.unreceived for i in bulletin.city_intensities.values())
    quake = bulletin.earthquake
    assert quake is not None
    assert quake.hypocenter_name == "福島県沖"
    assert quake.magnitude == pytest.approx(4.5)


def test_unreceived_city_without_max_int_lifts_its_area_to_5_lower(jma_bytes: Loader) -> None:
    """A city whose only news is 未入電 must push its area over a ≥5- threshold."""
    data = replace_once(
        jma_bytes(VXSE53_2021),
        "<City><Name>双葉町</Name><Code>0754600</Code><MaxInt>3</MaxInt>\n"
        "<IntensityStation><Name>双葉町両竹＊</Name><Code>0754632</Code><Int>3</Int>",
        "<City><Name>双葉町</Name><Code>0754600</Code>"
        "<Condition>震度５弱以上未入電</Condition>\n"
        "<IntensityStation><Name>双葉町両竹＊</Name><Code>0754632</Code>"
        "<Int>震度５弱以上未入電</Int>",
    )
    bulletin = parse_bulletin(data)
    unreceived = Intensity("5-", unreceived=True)
    assert bulletin.city_intensities["0754600"] == unreceived
    assert bulletin.area_intensities["251"] == unreceived
    assert bulletin.area_intensities["222"] == shindo("3")
    assert bulletin.max_intensity == unreceived
    assert bulletin.max_intensity >= shindo("5-")


def test_vxse53_without_intensity_is_a_distant_quake_not_an_error(jma_bytes: Loader) -> None:
    """JMA's VXSE53 for a quake abroad (遠地地震) has a hypocentre but no Body/Intensity."""
    text = jma_bytes(VXSE53_2021).decode("utf-8")
    text = re.sub(r"<Information .*</Information>", "", text, flags=re.S)
    text = re.sub(r"<Intensity>.*</Intensity>", "", text, flags=re.S)
    bulletin = parse_bulletin(text.encode("utf-8"))
    assert bulletin.kind is BulletinKind.VXSE53
    assert bulletin.earthquake is not None and bulletin.earthquake.magnitude == pytest.approx(4.5)
    assert bulletin.max_intensity is None
    assert bulletin.area_intensities == {} and bulletin.city_intensities == {}


def test_condition_alone_marks_a_city_unreceived(jma_bytes: Loader) -> None:
    """Only <Condition> says 未入電 here: MaxInt and the one station both say 3."""
    data = replace_once(
        jma_bytes(VXSE53_2021),
        "<City><Name>双葉町</Name><Code>0754600</Code><MaxInt>3</MaxInt>",
        "<City><Name>双葉町</Name><Code>0754600</Code><MaxInt>3</MaxInt>"
        "<Condition>震度５弱以上未入電</Condition>",
    )
    bulletin = parse_bulletin(data)
    assert bulletin.city_intensities["0754600"] == Intensity("5-", unreceived=True)
    assert bulletin.area_intensities["251"] >= shindo("5-")


def test_unreceived_in_headline_alone_counts(jma_bytes: Loader) -> None:
    data = replace_once(
        jma_bytes(VXSE53_2021),
        '<Kind><Name>震度３</Name></Kind>\n<Areas codeType="気象・地震・火山情報／市町村等">',
        "<Kind><Name>震度５弱以上未入電</Name></Kind>\n"
        '<Areas codeType="気象・地震・火山情報／市町村等">',
    )
    bulletin = parse_bulletin(data)
    assert bulletin.city_intensities["0420200"] == Intensity("5-", unreceived=True)
    assert bulletin.max_intensity is not None and bulletin.max_intensity >= shindo("5-")


# --------------------------------------------------------------------------- VTSE41


def test_vtse41_2023_advisories(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VTSE41_2023))
    assert bulletin.kind is BulletinKind.VTSE41
    assert bulletin.title == "津波注意報・津波予報"
    assert bulletin.control_title == "津波警報・注意報・予報a"
    assert bulletin.status is BulletinStatus.REAL
    assert bulletin.tsunami["320"] is TsunamiKind.ADVISORY  # 伊豆諸島
    assert bulletin.tsunami["321"] is TsunamiKind.ADVISORY  # 小笠原諸島
    assert bulletin.tsunami_area_names["321"] == "小笠原諸島"
    assert bulletin.tsunami["310"] is TsunamiKind.FORECAST
    advisories = {code for code, kind in bulletin.tsunami.items() if kind >= TsunamiKind.ADVISORY}
    assert advisories == {"320", "321"}
    assert Counter(bulletin.tsunami.values()) == {TsunamiKind.FORECAST: 9, TsunamiKind.ADVISORY: 2}
    assert bulletin.max_tsunami is TsunamiKind.ADVISORY
    # The headline's 492 (伊豆・小笠原諸島) is a regional roll-up, not a forecast area.
    assert "492" not in bulletin.tsunami
    quake = bulletin.earthquake
    assert quake is not None
    assert quake.hypocenter_name == "鳥島近海"
    assert quake.magnitude is None and quake.magnitude_description == "Ｍ不明"


def test_vtse41_drill_major_warnings_and_noto_advisory(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VTSE41_DRILL))
    assert bulletin.status is BulletinStatus.DRILL
    assert not bulletin.is_real
    assert bulletin.tsunami["360"] is TsunamiKind.ADVISORY
    assert bulletin.tsunami_area_names["360"] == "石川県能登"
    assert bulletin.tsunami["300"] is TsunamiKind.MAJOR_WARNING  # code 53 大津波警報：発表
    assert bulletin.max_tsunami is TsunamiKind.MAJOR_WARNING
    counts = Counter(bulletin.tsunami.values())
    assert counts == {
        TsunamiKind.MAJOR_WARNING: 29,
        TsunamiKind.WARNING: 15,
        TsunamiKind.ADVISORY: 22,
    }
    warned = [code for code, kind in bulletin.tsunami.items() if kind >= TsunamiKind.WARNING]
    assert len(warned) == 44 and "360" not in warned


def test_tsunami_kind_codes_and_names() -> None:
    by_code = {code: TsunamiKind.from_jma(code, None) for code in ("00", "50", "51", "52", "53")}
    assert by_code == {
        "00": TsunamiKind.NONE,
        "50": TsunamiKind.WARNING_LIFTED,
        "51": TsunamiKind.WARNING,
        "52": TsunamiKind.MAJOR_WARNING,
        "53": TsunamiKind.MAJOR_WARNING,
    }
    assert TsunamiKind.from_jma("60", None) is TsunamiKind.ADVISORY_LIFTED
    assert TsunamiKind.from_jma("62", None) is TsunamiKind.ADVISORY
    for code in ("71", "72", "73"):
        assert TsunamiKind.from_jma(code, None) is TsunamiKind.FORECAST
    # The code wins over a misleading name; the name is only a fallback.
    assert TsunamiKind.from_jma("51", "津波注意報") is TsunamiKind.WARNING
    assert TsunamiKind.from_jma(None, "大津波警報：発表") is TsunamiKind.MAJOR_WARNING
    assert TsunamiKind.from_jma("", "津波警報") is TsunamiKind.WARNING
    assert TsunamiKind.from_jma("99", "津波注意報") is TsunamiKind.ADVISORY
    assert TsunamiKind.from_jma(None, "津波注意報解除") is TsunamiKind.ADVISORY_LIFTED
    assert TsunamiKind.from_jma(None, "警報解除") is TsunamiKind.WARNING_LIFTED
    assert (
        TsunamiKind.from_jma(None, "津波予報（若干の海面変動）［津波警報解除］")
        is TsunamiKind.FORECAST
    )
    with pytest.raises(BulletinError, match="unknown tsunami kind"):
        TsunamiKind.from_jma("99", "なにか")


def test_lifted_tsunami_kinds_never_count_as_in_effect() -> None:
    for lifted in (TsunamiKind.WARNING_LIFTED, TsunamiKind.ADVISORY_LIFTED):
        assert lifted.is_lifted
        assert lifted < TsunamiKind.FORECAST < TsunamiKind.ADVISORY
        assert not lifted >= TsunamiKind.ADVISORY
    assert TsunamiKind.NONE < TsunamiKind.ADVISORY < TsunamiKind.WARNING
    assert TsunamiKind.WARNING < TsunamiKind.MAJOR_WARNING
    assert not TsunamiKind.ADVISORY.is_lifted


# --------------------------------------------------------------------------- Intensity


def test_intensity_scale_is_ordered() -> None:
    scale = ["1", "2", "3", "4", "5-", "5+", "6-", "6+", "7"]
    shuffled = [shindo(v) for v in reversed(scale)]
    assert [i.value for i in sorted(shuffled)] == scale
    assert (
        shindo("5+") > shindo("5-") and shindo("6-") >= shindo("5+") and shindo("4") < shindo("5-")
    )
    assert shindo("7") >= shindo("7") and shindo("1") <= shindo("1")
    assert max(shindo("5-"), shindo("6+"), shindo("6-")) == shindo("6+")


def test_intensity_parses_jma_spellings() -> None:
    assert Intensity.parse("5-") == shindo("5-")
    assert Intensity.parse("震度６弱") == shindo("6-")
    assert Intensity.parse("震度５強") == shindo("5+")
    assert Intensity.parse(" 震度７ ") == shindo("7")
    assert Intensity.parse("6強") == shindo("6+")
    assert Intensity.parse("震度５弱以上未入電") == Intensity("5-", unreceived=True)


def test_unreceived_sits_between_5_lower_and_5_upper() -> None:
    unreceived = Intensity("5-", unreceived=True)
    assert unreceived >= shindo("5-") and unreceived > shindo("5-")
    assert unreceived < shindo("5+")
    assert unreceived != shindo("5-")
    assert str(unreceived) == "5-?"


@pytest.mark.parametrize("text", ["0", "8", "5", "５弱以上", "", "弱", "震度"])
def test_unknown_intensity_text_is_a_bulletin_error(text: str) -> None:
    with pytest.raises(BulletinError, match="unknown seismic intensity"):
        Intensity.parse(text)


def test_intensity_constructor_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Intensity("8")
    with pytest.raises(ValueError):
        Intensity("4", unreceived=True)


# --------------------------------------------------------------------------- info types


def cancellation_of(data: bytes) -> bytes:
    """Shape a VXSE53 like JMA's 取消: no headline items, a body with only a text."""
    data = replace_once(data, "<InfoType>発表</InfoType>", "<InfoType>取消</InfoType>")
    text = data.decode("utf-8")
    text = re.sub(r"<Information .*</Information>", "", text, flags=re.S)
    text = re.sub(
        r"(<Body [^>]*>).*(</Body>)",
        r"\1<Text>震源・震度情報を取り消します。</Text>\2",
        text,
        flags=re.S,
    )
    assert "<Intensity>" not in text and "<Information" not in text
    return text.encode("utf-8")


def test_cancelled_bulletin_carries_no_intensities(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(cancellation_of(jma_bytes(VXSE53_2021)))
    assert bulletin.info_type is InfoType.CANCELLED and bulletin.is_cancelled
    assert bulletin.kind is BulletinKind.VXSE53
    assert bulletin.event_id == "20210217230627"
    assert bulletin.max_intensity is None
    assert bulletin.area_intensities == {} and bulletin.city_intensities == {}
    assert bulletin.earthquake is None


def test_cancellation_ignores_a_body_that_still_has_data(jma_bytes: Loader) -> None:
    data = replace_once(
        jma_bytes(VXSE51_2009), "<InfoType>発表</InfoType>", "<InfoType>取消</InfoType>"
    )
    bulletin = parse_bulletin(data)
    assert bulletin.info_type is InfoType.CANCELLED
    assert bulletin.area_intensities == {} and bulletin.max_intensity is None


def test_cancelled_tsunami_bulletin_has_no_tsunami_areas(jma_bytes: Loader) -> None:
    data = replace_once(
        jma_bytes(VTSE41_2023), "<InfoType>発表</InfoType>", "<InfoType>取消</InfoType>"
    )
    bulletin = parse_bulletin(data)
    assert bulletin.is_cancelled and bulletin.tsunami == {} and bulletin.max_tsunami is None


def test_corrected_and_test_bulletins_are_labelled(jma_bytes: Loader) -> None:
    data = replace_once(
        jma_bytes(VXSE51_2009), "<InfoType>発表</InfoType>", "<InfoType>訂正</InfoType>"
    )
    data = replace_once(data, "<Status>通常</Status>", "<Status>試験</Status>")
    bulletin = parse_bulletin(data)
    assert bulletin.info_type is InfoType.CORRECTED
    assert bulletin.status is BulletinStatus.TEST
    assert bulletin.max_intensity == shindo("6-")  # a correction is still data


# --------------------------------------------------------------------------- namespaces


def test_a_document_with_its_namespaces_stripped_is_refused(jma_bytes: Loader) -> None:
    # Issue 18: elements are matched by local name, so without the namespace check a
    # look-alike with no namespaces at all passed for a real bulletin.
    data = jma_bytes(VXSE53_2009)
    stripped = re.sub(rb' xmlns="[^"]*"', b"", data)
    assert stripped != data
    with pytest.raises(BulletinError, match="no namespace"):
        parse_bulletin(stripped)


def test_prefixed_head_and_body_parse_the_same(jma_bytes: Loader) -> None:
    data = jma_bytes(VTSE41_DRILL)
    prefixed = replace_once(
        data,
        '<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">',
        '<jmx_ib:Head xmlns:jmx_ib="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">',
    )
    prefixed = replace_once(prefixed, "</Head>", "</jmx_ib:Head>")
    prefixed = replace_once(
        prefixed,
        '<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/seismology1/"',
        '<jmx_seis:Body xmlns:jmx_seis="http://xml.kishou.go.jp/jmaxml1/body/seismology1/"',
    )
    prefixed = replace_once(prefixed, "</Body>", "</jmx_seis:Body>")
    assert parse_bulletin(prefixed) == parse_bulletin(data)


# --------------------------------------------------------------------------- immutability


def test_bulletin_cannot_be_altered_by_a_consumer(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE51_2009))
    with pytest.raises(dataclasses.FrozenInstanceError):
        bulletin.max_intensity = shindo("1")  # type: ignore[misc]
    with pytest.raises(TypeError):
        bulletin.area_intensities["390"] = shindo("1")  # type: ignore[index]
    assert isinstance(bulletin, Bulletin)


# --------------------------------------------------------------------------- bad input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Report [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>&lol9;</Title></Control></Report>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Report [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>&secret;</Title></Control></Report>
"""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty", id="empty-bytes"),
        pytest.param("", "empty", id="empty-str"),
        pytest.param(b"  \n\t ", "empty", id="whitespace"),
        pytest.param(random.Random(8).randbytes(4096), "not well-formed", id="random-bytes"),
        pytest.param(b"not xml at all", "not well-formed", id="plain-text"),
        pytest.param(BILLION_LAUGHS, "forbidden XML feature", id="entity-bomb"),
        pytest.param(EXTERNAL_ENTITY, "forbidden XML feature", id="external-entity"),
        pytest.param(b"<!DOCTYPE Report><Report/>", "forbidden XML feature", id="any-doctype"),
        pytest.param(b"<feed/>", "not <Report>", id="wrong-root"),
        pytest.param(b'<Report xmlns="urn:other"/>', "namespace", id="foreign-namespace"),
        pytest.param(b"<Report/>", "no namespace", id="report-without-namespace"),
        pytest.param(
            b'<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"/>',
            "Report/Control",
            id="bare-report",
        ),
        pytest.param(None, "must be bytes or str", id="none"),
        pytest.param(12345, "must be bytes or str", id="int"),
    ],
)
def test_bad_documents_raise_bulletin_error(data: object, message: str) -> None:
    with pytest.raises(BulletinError, match=message):
        parse_bulletin(data)  # type: ignore[arg-type]


def test_truncated_fixture_is_a_bulletin_error(jma_bytes: Loader) -> None:
    data = jma_bytes(VXSE53_2011)
    for cut in (len(data) // 2, len(data) - 10, 100):
        with pytest.raises(BulletinError, match="not well-formed"):
            parse_bulletin(data[:cut])


def test_oversized_document_is_refused_before_parsing() -> None:
    data = b"<Report>" + b" " * MAX_DOCUMENT_BYTES + b"</Report>"
    with pytest.raises(BulletinError, match="too large"):
        parse_bulletin(data)


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        pytest.param(
            VXSE51_2009,
            "<ReportDateTime>2009-08-11T05:09:00+09:00</ReportDateTime>",
            "",
            "Head/ReportDateTime",
            id="missing-report-datetime",
        ),
        pytest.param(
            VXSE51_2009,
            "<ReportDateTime>2009-08-11T05:09:00+09:00</ReportDateTime>",
            "<ReportDateTime>2009-08-11T05:09:00</ReportDateTime>",
            "no time zone",
            id="naive-report-datetime",
        ),
        pytest.param(
            VXSE51_2009,
            "<ReportDateTime>2009-08-11T05:09:00+09:00</ReportDateTime>",
            "<ReportDateTime>yesterday</ReportDateTime>",
            "not an ISO 8601",
            id="garbage-report-datetime",
        ),
        pytest.param(
            VXSE51_2009,
            "<EventID>20090811050711</EventID>",
            "<EventID></EventID>",
            "Head/EventID",
            id="empty-event-id",
        ),
        pytest.param(
            VXSE51_2009,
            "<Status>通常</Status>",
            "<Status>本番</Status>",
            "Control/Status",
            id="unknown-status",
        ),
        pytest.param(
            VXSE51_2009,
            "<InfoType>発表</InfoType>",
            "<InfoType>遅延</InfoType>",
            "Head/InfoType",
            id="unknown-info-type",
        ),
        pytest.param(
            VXSE51_2009,
            "<Area><Name>石川県能登</Name><Code>390</Code><MaxInt>3</MaxInt></Area>",
            "<Area><Name>石川県能登</Name><Code>390</Code><MaxInt>8</MaxInt></Area>",
            "unknown seismic intensity '8'",
            id="bad-intensity",
        ),
        pytest.param(
            VXSE51_2009,
            "<Area><Name>石川県能登</Name><Code>390</Code><MaxInt>3</MaxInt></Area>",
            "<Area><Name>石川県能登</Name><MaxInt>3</MaxInt></Area>",
            "Area has no Code",
            id="area-without-code",
        ),
        pytest.param(
            VXSE51_2009,
            "<InfoKind>震度速報</InfoKind>",
            "<InfoKind>津波警報・注意報・予報</InfoKind>",
            "contradicts",
            id="title-contradicts-info-kind",
        ),
        pytest.param(
            VXSE53_2021,
            '<jmx_eb:Magnitude type="Mj" description="Ｍ４．５">4.5</jmx_eb:Magnitude>',
            '<jmx_eb:Magnitude type="Mj" description="Ｍ４．５">big</jmx_eb:Magnitude>',
            "Magnitude is not a number",
            id="garbage-magnitude",
        ),
        pytest.param(
            VTSE41_2023,
            "<Forecast>",
            "<Elsewhere>",
            "not well-formed",
            id="broken-tags",
        ),
    ],
)
def test_broken_fixture_raises_a_named_bulletin_error(
    jma_bytes: Loader, name: str, old: str, new: str, message: str
) -> None:
    data = replace_once(jma_bytes(name), old, new)
    with pytest.raises(BulletinError, match=re.escape(message)):
        parse_bulletin(data)


def test_hypocentre_only_bulletin_is_unsupported(jma_bytes: Loader) -> None:
    """A VXSE52 (震源に関する情報) says nothing about shaking, so it must not pass as VXSE53."""
    data = replace_once(
        jma_bytes(VXSE53_2021),
        "<Title>震源・震度に関する情報</Title>",
        "<Title>震源に関する情報</Title>",
    )
    data = replace_once(data, "<Title>震源・震度情報</Title>", "<Title>震源情報</Title>")
    text = re.sub(r"<Intensity>.*</Intensity>", "", data.decode("utf-8"), flags=re.S)
    with pytest.raises(BulletinError, match="unsupported bulletin"):
        parse_bulletin(text.encode("utf-8"))


def test_vxse53_recognised_by_content_when_control_title_is_unknown(jma_bytes: Loader) -> None:
    data = replace_once(
        jma_bytes(VXSE53_2021),
        "<Title>震源・震度に関する情報</Title>",
        "<Title>震源・震度に関する情報（改）</Title>",
    )
    assert parse_bulletin(data).kind is BulletinKind.VXSE53


def test_unknown_tsunami_kind_in_body_is_an_error(jma_bytes: Loader) -> None:
    text = jma_bytes(VTSE41_2023).decode("utf-8")
    head, _, body = text.partition("<Body ")
    body = body.replace(
        "<Kind><Name>津波注意報</Name><Code>62</Code></Kind>",
        "<Kind><Name>謎</Name><Code>99</Code></Kind>",
        1,
    )
    with pytest.raises(BulletinError, match="unknown tsunami kind"):
        parse_bulletin(f"{head}<Body {body}".encode())


def test_missing_body_is_an_error_unless_cancelled(jma_bytes: Loader) -> None:
    text = jma_bytes(VXSE51_2009).decode("utf-8")
    without_body = re.sub(r"<Body .*</Body>", "", text, flags=re.S).encode("utf-8")
    with pytest.raises(BulletinError, match="Report/Body"):
        parse_bulletin(without_body)
    cancelled = replace_once(without_body, "<InfoType>発表</InfoType>", "<InfoType>取消</InfoType>")
    assert parse_bulletin(cancelled).is_cancelled


def test_tsunami_bulletin_without_forecast_is_an_error(jma_bytes: Loader) -> None:
    text = jma_bytes(VTSE41_2023).decode("utf-8")
    without = re.sub(r"<Tsunami>.*</Tsunami>", "", text, flags=re.S).encode("utf-8")
    with pytest.raises(BulletinError, match="Body/Tsunami/Forecast"):
        parse_bulletin(without)


def test_earthquake_bulletin_without_intensity_is_an_error(jma_bytes: Loader) -> None:
    text = jma_bytes(VXSE51_2009).decode("utf-8")
    without = re.sub(r"<Headline>.*</Headline>", "", text, flags=re.S)
    without = re.sub(r"<Intensity>.*</Intensity>", "", without, flags=re.S)
    with pytest.raises(BulletinError, match="VXSE51 bulletin reports no seismic intensity"):
        parse_bulletin(without.encode("utf-8"))


# --------------------------------------------------------------------------- Atom feed

ATOM_FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja">
  <title>高頻度（地震火山）</title>
  <subtitle>JMAXML publishing feed</subtitle>
  <updated>2024-01-01T16:12:38+09:00</updated>
  <id>urn:uuid:00000000-0000-0000-0000-000000000000</id>
  <link href="https://www.jma.go.jp/" rel="related"/>
  <link href="https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml" rel="self"/>
  <entry>
    <title>震度速報</title>
    <id>https://www.data.jma.go.jp/developer/xml/data/20240101071234_0_VXSE51_010000.xml</id>
    <updated>2024-01-01T07:12:34Z</updated>
    <author><name>気象庁</name></author>
    <link type="application/xml" href="https://www.data.jma.go.jp/developer/xml/data/20240101071234_0_VXSE51_010000.xml"/>
    <content type="text">【震度速報】１日１６時１０分ころ、強い揺れを感じました。</content>
  </entry>
  <entry>
    <title>津波警報・注意報・予報a</title>
    <id>https://www.data.jma.go.jp/developer/xml/data/20240101071300_0_VTSE41_010000.xml</id>
    <updated>2024-01-01T07:13:00Z</updated>
    <author><name>気象庁</name></author>
    <link type="application/xml" href="https://www.data.jma.go.jp/developer/xml/data/20240101071300_0_VTSE41_010000.xml"/>
  </entry>
  <entry>
    <title>震源・震度に関する情報</title>
    <id>urn:example:vxse53</id>
    <updated>2024-01-01T16:20:00+09:00</updated>
    <link rel="alternate" href="http://www.data.jma.go.jp/developer/xml/data/20240101072000_0_VXSE53_010000.xml"/>
  </entry>
</feed>
"""


def test_atom_feed_entries_point_at_bulletins() -> None:
    entries = parse_atom_feed(ATOM_FEED.encode("utf-8"))
    base = "https://www.data.jma.go.jp/developer/xml/data/"
    assert entries == [
        FeedEntry(
            id=f"{base}20240101071234_0_VXSE51_010000.xml",
            title="震度速報",
            updated=datetime(2024, 1, 1, 7, 12, 34, tzinfo=UTC),
            link_url=f"{base}20240101071234_0_VXSE51_010000.xml",
        ),
        FeedEntry(
            id=f"{base}20240101071300_0_VTSE41_010000.xml",
            title="津波警報・注意報・予報a",
            updated=datetime(2024, 1, 1, 7, 13, tzinfo=UTC),
            link_url=f"{base}20240101071300_0_VTSE41_010000.xml",
        ),
        FeedEntry(
            id="urn:example:vxse53",
            title="震源・震度に関する情報",
            updated=datetime(2024, 1, 1, 16, 20, tzinfo=JST),
            link_url="http://www.data.jma.go.jp/developer/xml/data/20240101072000_0_VXSE53_010000.xml",
        ),
    ]
    assert all(entry.updated.tzinfo is not None for entry in entries)
    assert parse_atom_feed(ATOM_FEED) == entries


def test_empty_atom_feed_has_no_entries() -> None:
    assert (
        parse_atom_feed(b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>') == []
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"<feed>", "not well-formed", id="truncated"),
        pytest.param(b"<feed/>", "not an Atom <feed>", id="no-namespace"),
        pytest.param(
            b'<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"/>',
            "not an Atom",
            id="bulletin",
        ),
        pytest.param(
            BILLION_LAUGHS.replace(b"<!DOCTYPE Report", b"<!DOCTYPE feed"),
            "forbidden XML feature",
            id="entity-bomb",
        ),
        pytest.param(
            ATOM_FEED.replace("<updated>2024-01-01T07:13:00Z</updated>", "").encode("utf-8"),
            "entry #1",
            id="entry-without-updated",
        ),
        pytest.param(
            re.sub(r'<link type="application/xml" href="[^"]*VTSE41[^"]*"/>', "", ATOM_FEED).encode(
                "utf-8"
            ),
            "no <link href>",
            id="entry-without-link",
        ),
        pytest.param(
            ATOM_FEED.replace(
                'href="https://www.data.jma.go.jp/developer/xml/data/20240101071300_0_VTSE41',
                'href="file:///etc/passwd#',
            ).encode("utf-8"),
            "non-HTTP URL",
            id="file-link",
        ),
        pytest.param(random.Random(3).randbytes(512), "not well-formed", id="random-bytes"),
    ],
)
def test_bad_feeds_raise_bulletin_error(data: bytes, message: str) -> None:
    with pytest.raises(BulletinError, match=re.escape(message)):
        parse_atom_feed(data)
