"""The trigger policy, table by table, on bulletins parsed from JMA's own documents.

These are pure-function tests: no database. They pin who gets a welfare check after which
report, which is the one decision here that can leave a frightened resident unasked.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from service.jma.parser import BulletinStatus, Intensity, TsunamiKind, parse_bulletin
from service.jma.policy import (
    AreaHit,
    AreaKind,
    PolicySettings,
    PriorTrigger,
    SiteAreas,
    Verdict,
    aftershock_allows,
    decide,
    intensity_level,
)
from tests.jma.helpers import (
    VTSE41_DRILL,
    VXSE51_2009,
    VXSE53_2009,
    VXSE53_2011,
    VXSE53_2021,
    aftershock,
    cancellation_of,
    replace_once,
)

Loader = Callable[[str], bytes]
DEFAULT = PolicySettings()


def site(quake: str | None = None, tsunami: str | None = None) -> SiteAreas:
    return SiteAreas(uuid.uuid4(), quake, tsunami)


def soon_after(bulletin, minutes: int = 2):  # type: ignore[no-untyped-def]
    return bulletin.report_datetime + timedelta(minutes=minutes)


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("fixture", "area", "min_intensity", "verdict"),
    [
        # 2009-08-11 駿河湾: 石川県能登 (390) felt 3, 静岡県伊豆 (440) 6-, 長野県南部 (422) 5-.
        (VXSE53_2009, "390", "5-", Verdict.BELOW_THRESHOLD),
        (VXSE53_2009, "440", "5-", Verdict.BROADCAST),
        (VXSE51_2009, "422", "5-", Verdict.BROADCAST),  # exactly at the threshold
        (VXSE51_2009, "422", "5+", Verdict.BELOW_THRESHOLD),  # one step below a stricter one
        (VXSE51_2009, "441", "5+", Verdict.BROADCAST),
        (VXSE51_2009, "420", "3", Verdict.BROADCAST),  # a council may choose to check at 3
        (VXSE53_2021, "251", "5-", Verdict.BELOW_THRESHOLD),  # 2021 福島県沖, max 3
        (VXSE53_2011, "220", "7", Verdict.BROADCAST),  # 宮城県北部 felt 7
    ],
)
def test_intensity_threshold_per_area(
    jma_bytes: Loader, fixture: str, area: str, min_intensity: str, verdict: Verdict
) -> None:
    bulletin = parse_bulletin(jma_bytes(fixture))
    policy = PolicySettings(min_intensity=Intensity(min_intensity))
    the_site = site(quake=area)
    decision = decide(bulletin, policy, [the_site], [], now=soon_after(bulletin))
    assert decision.verdict is verdict, decision.reason
    assert decision.dry_run is False
    assert decision.mentioned_site_ids == (the_site.site_id,)
    if verdict is Verdict.BROADCAST:
        assert decision.site_ids == (the_site.site_id,)
        assert decision.cause is not None
    else:
        assert decision.site_ids == () and decision.cause is None


def test_unreceived_intensity_counts_as_at_least_5_lower(jma_bytes: Loader) -> None:
    """震度５弱以上未入電 in 福島県浜通り (251): the data has not arrived, the shaking may be
    5- or more, so the residents there are checked on."""
    data = replace_once(
        jma_bytes(VXSE53_2021),
        "<City><Name>双葉町</Name><Code>0754600</Code><MaxInt>3</MaxInt>",
        "<City><Name>双葉町</Name><Code>0754600</Code><MaxInt>3</MaxInt>"
        "<Condition>震度５弱以上未入電</Condition>",
    )
    bulletin = parse_bulletin(data)
    fukushima, miyagi = site(quake="251"), site(quake="222")
    decision = decide(bulletin, DEFAULT, [fukushima, miyagi], [], now=soon_after(bulletin))
    assert decision.verdict is Verdict.BROADCAST
    assert decision.site_ids == (fukushima.site_id,)
    assert decision.cause == "震度5弱以上(未入電) 福島県浜通り 2021-02-17 23:06"
    # Without the 未入電 the same bulletin starts nothing.
    plain = parse_bulletin(jma_bytes(VXSE53_2021))
    assert decide(plain, DEFAULT, [fukushima], [], now=soon_after(plain)).verdict is (
        Verdict.BELOW_THRESHOLD
    )


def test_a_site_whose_area_is_not_in_the_bulletin_is_not_included(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    assert "743" not in bulletin.area_intensities  # 熊本県天草・芦北 felt nothing reported
    miyagi, noto, amakusa, no_code = (
        site(quake="220"),
        site(quake="390"),
        site(quake="743"),
        site(),
    )
    decision = decide(
        bulletin, DEFAULT, [miyagi, noto, amakusa, no_code], [], now=soon_after(bulletin)
    )
    assert decision.verdict is Verdict.BROADCAST
    assert decision.site_ids == (miyagi.site_id,)
    assert set(decision.mentioned_site_ids) == {miyagi.site_id, noto.site_id}
    assert decision.cause == "震度7 宮城県北部 2011-03-11 14:46"


def test_tsunami_area_codes_are_not_earthquake_area_codes(jma_bytes: Loader) -> None:
    """390 is 石川県能登 for a quake but 愛知県外海 for a tsunami: a site that only follows the
    quake area 390 is not in a tsunami bulletin that names tsunami area 390."""
    bulletin = parse_bulletin(jma_bytes(VTSE41_DRILL))
    assert bulletin.tsunami["390"] is TsunamiKind.MAJOR_WARNING
    quake_only = site(quake="390")
    decision = decide(bulletin, DEFAULT, [quake_only], [], now=soon_after(bulletin))
    assert decision.verdict is Verdict.BELOW_THRESHOLD
    assert decision.mentioned_site_ids == ()


@pytest.mark.parametrize(
    ("area", "min_kind", "verdict"),
    [
        ("300", TsunamiKind.WARNING, Verdict.BROADCAST),  # 茨城県: 大津波警報
        ("100", TsunamiKind.WARNING, Verdict.BROADCAST),  # 津波警報, exactly at the default
        ("360", TsunamiKind.WARNING, Verdict.BELOW_THRESHOLD),  # 石川県能登: 津波注意報
        ("360", TsunamiKind.ADVISORY, Verdict.BROADCAST),
        ("300", None, Verdict.BELOW_THRESHOLD),  # tsunami triggers switched off
    ],
)
def test_tsunami_kind_threshold(
    jma_bytes: Loader, area: str, min_kind: TsunamiKind | None, verdict: Verdict
) -> None:
    # The drill fixture, relabelled as real so that only the threshold is under test.
    bulletin = dataclasses.replace(
        parse_bulletin(jma_bytes(VTSE41_DRILL)), status=BulletinStatus.REAL
    )
    policy = PolicySettings(tsunami_min_kind=min_kind)
    decision = decide(bulletin, policy, [site(tsunami=area)], [], now=soon_after(bulletin))
    assert decision.verdict is verdict


# --------------------------------------------------------------------------- drills, age, switch


def test_a_drill_is_a_dry_run_that_says_what_would_have_happened(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VTSE41_DRILL))
    assert bulletin.status is BulletinStatus.DRILL
    ibaraki, noto = site(tsunami="300"), site(tsunami="360")
    decision = decide(bulletin, DEFAULT, [ibaraki, noto], [], now=soon_after(bulletin))
    assert decision.dry_run is True
    assert decision.verdict is Verdict.BROADCAST  # what a real one would have done
    assert decision.site_ids == (ibaraki.site_id,)
    assert decision.cause == "大津波警報 茨城県 2016-09-01 07:10"


def test_a_test_bulletin_is_a_dry_run_too(jma_bytes: Loader) -> None:
    bulletin = dataclasses.replace(
        parse_bulletin(jma_bytes(VXSE53_2011)), status=BulletinStatus.TEST
    )
    decision = decide(bulletin, DEFAULT, [site(quake="220")], [], now=soon_after(bulletin))
    assert decision.dry_run is True and decision.verdict is Verdict.BROADCAST


@pytest.mark.parametrize(
    ("minutes_late", "verdict"),
    [(2, Verdict.BROADCAST), (60, Verdict.BROADCAST), (61, Verdict.TOO_OLD)],
)
def test_a_report_older_than_the_max_age_starts_nothing(
    jma_bytes: Loader, minutes_late: int, verdict: Verdict
) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    now = bulletin.report_datetime + timedelta(minutes=minutes_late)
    decision = decide(bulletin, DEFAULT, [site(quake="220")], [], now=now)
    assert decision.verdict is verdict


def test_a_disabled_policy_starts_nothing(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    policy = PolicySettings(enabled=False)
    decision = decide(bulletin, policy, [site(quake="220")], [], now=soon_after(bulletin))
    assert decision.verdict is Verdict.DISABLED


def test_a_cancellation_is_recognised(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(cancellation_of(jma_bytes(VXSE51_2009)))
    decision = decide(bulletin, DEFAULT, [site(quake="440")], [], now=soon_after(bulletin))
    assert decision.verdict is Verdict.CANCEL and decision.site_ids == ()


def test_hold_off_sets_when_the_broadcast_fires(jma_bytes: Loader) -> None:
    bulletin = parse_bulletin(jma_bytes(VXSE53_2011))
    now = soon_after(bulletin)
    policy = PolicySettings(hold_off=timedelta(minutes=3))
    decision = decide(bulletin, policy, [site(quake="220")], [], now=now)
    assert decision.fire_at == now + timedelta(minutes=3)


# --------------------------------------------------------------------------- aftershocks


def test_lower_aftershock_in_window_is_held_then_a_higher_one_fires(jma_bytes: Loader) -> None:
    main = parse_bulletin(jma_bytes(VXSE51_2009))  # 静岡県東部 (441): 5+
    shizuoka = site(quake="441")
    first = decide(main, DEFAULT, [shizuoka], [], now=soon_after(main))
    assert first.verdict is Verdict.BROADCAST
    priors = [
        PriorTrigger(AreaKind.QUAKE, hit.code, main.event_id, hit.level, main.report_datetime)
        for hit in first.hits
    ]

    lower = aftershock(main, event_id="A1", after=timedelta(hours=1), areas={"441": "5-"})
    held = decide(lower, DEFAULT, [shizuoka], priors, now=soon_after(lower))
    assert held.verdict is Verdict.AFTERSHOCK_SUPPRESSED
    assert [h.code for h in held.suppressed] == ["441"]

    higher = aftershock(main, event_id="A2", after=timedelta(hours=2), areas={"441": "6-"})
    fired = decide(higher, DEFAULT, [shizuoka], priors, now=soon_after(higher))
    assert fired.verdict is Verdict.BROADCAST
    assert fired.cause is not None and fired.cause.startswith("震度6弱 静岡県東部 ")


def test_an_aftershock_after_the_window_fires_again(jma_bytes: Loader) -> None:
    main = parse_bulletin(jma_bytes(VXSE51_2009))
    prior = PriorTrigger(AreaKind.QUAKE, "441", main.event_id, 11, main.report_datetime)
    later = aftershock(
        main, event_id="B1", after=timedelta(hours=6, minutes=1), areas={"441": "5-"}
    )
    decision = decide(later, DEFAULT, [site(quake="441")], [prior], now=soon_after(later))
    assert decision.verdict is Verdict.BROADCAST


def test_policy_can_check_on_every_new_quake_in_the_window(jma_bytes: Loader) -> None:
    main = parse_bulletin(jma_bytes(VXSE51_2009))
    prior = PriorTrigger(
        AreaKind.QUAKE, "441", main.event_id, intensity_level(Intensity("5+")), main.report_datetime
    )
    lower = aftershock(main, event_id="C1", after=timedelta(hours=1), areas={"441": "5-"})
    policy = PolicySettings(new_quake_in_window_starts_broadcast=True)
    assert decide(lower, policy, [site(quake="441")], [prior], now=soon_after(lower)).verdict is (
        Verdict.BROADCAST
    )


HIT_5_PLUS = AreaHit(AreaKind.QUAKE, "441", "静岡県東部", intensity_level(Intensity("5+")), "5強")


@pytest.mark.parametrize(
    ("prior_event", "prior_value", "hours_ago", "new_quake_counts", "allowed"),
    [
        ("E", "5+", 1, False, False),  # the same event again at the same strength
        ("E", "5+", 100, False, False),  # ... however long ago
        ("E", "5-", 1, False, True),  # the same event, now reported stronger
        ("E", "5+", 1, True, False),  # a repeat of the same quake is never a "new quake"
        ("X", "6-", 1, False, False),  # another quake, weaker than the last broadcast
        ("X", "5+", 1, False, False),  # ... or equal
        ("X", "5-", 1, False, True),  # ... stronger
        ("X", "6-", 1, True, True),  # weaker, but the policy counts every new quake
        ("X", "6-", 7, False, True),  # outside the six-hour window
    ],
)
def test_aftershock_rule_table(
    prior_event: str, prior_value: str, hours_ago: int, new_quake_counts: bool, allowed: bool
) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 1, 3, 12, tzinfo=UTC)
    prior = PriorTrigger(
        AreaKind.QUAKE,
        "441",
        prior_event,
        intensity_level(Intensity(prior_value)),
        now - timedelta(hours=hours_ago),
    )
    assert (
        aftershock_allows(
            HIT_5_PLUS,
            event_id="E",
            at=now,
            priors=[prior],
            window=timedelta(hours=6),
            new_quake_starts_broadcast=new_quake_counts,
        )
        is allowed
    )


def test_priors_of_other_areas_and_kinds_do_not_hold_anything_back() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 1, 3, 12, tzinfo=UTC)
    others = [
        PriorTrigger(AreaKind.QUAKE, "440", "X", 99, now),
        PriorTrigger(AreaKind.TSUNAMI, "441", "X", 99, now),
    ]
    assert aftershock_allows(
        HIT_5_PLUS,
        event_id="E",
        at=now,
        priors=others,
        window=timedelta(hours=6),
        new_quake_starts_broadcast=False,
    )
