"""What a referral carries and who may move it: the pure rules (service.referrals.policy)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.referrals.models import OPEN_REFERRAL, ReferralStatus
from service.referrals.policy import (
    HEALTH_FLAGS,
    ConsentScope,
    PersonFacts,
    partner_can_read,
    refuse_move,
    shared_person,
)

FACTS = PersonFacts(
    name="Nguyễn Thị Lan",
    phone="+819012345678",
    site="宅田町第2団地",
    language="vi",
    notes="腰痛で通院中",
    flags=frozenset({"disability", "pregnancy"}),
)

facts = st.builds(
    PersonFacts,
    name=st.text(min_size=1, max_size=20),
    phone=st.none() | st.just("+819012345678"),
    site=st.none() | st.text(min_size=1, max_size=10),
    language=st.sampled_from(["vi", "id", "ne", "pt"]),
    notes=st.none() | st.text(min_size=1, max_size=30),
    flags=st.frozensets(st.sampled_from([*HEALTH_FLAGS, "needs_interpreter"])),
)
scopes = st.none() | st.builds(ConsentScope, st.booleans(), st.booleans())


def test_without_consent_nothing_personal_is_carried():
    assert shared_person(FACTS, None) == {}


def test_basic_consent_carries_name_phone_site_language_only():
    assert shared_person(FACTS, ConsentScope(False, False)) == {
        "name": "Nguyễn Thị Lan",
        "phone": "+819012345678",
        "site": "宅田町第2団地",
        "language": "vi",
    }


def test_notes_and_health_only_when_consented_to():
    person = shared_person(FACTS, ConsentScope(True, True))
    assert person["notes"] == "腰痛で通院中"
    assert person["health"] == ["disability", "pregnancy"]
    assert "notes" not in shared_person(FACTS, ConsentScope(False, True))
    assert "health" not in shared_person(FACTS, ConsentScope(True, False))


@settings(derandomize=True, max_examples=200, deadline=None)
@given(facts, scopes)
def test_a_referral_never_carries_more_than_the_consent_allows(person_facts, scope):
    person = shared_person(person_facts, scope)
    if scope is None:
        assert person == {}
        return
    allowed = {"name", "phone", "site", "language"}
    allowed |= {"notes"} if scope.share_notes else set()
    allowed |= {"health"} if scope.share_health else set()
    assert set(person) <= allowed
    assert all(flag in HEALTH_FLAGS for flag in person.get("health", []))


@pytest.mark.parametrize(
    ("move", "side", "status", "allowed"),
    [
        ("accept", "partner", ReferralStatus.sent, True),
        ("accept", "referrer", ReferralStatus.sent, False),
        ("accept", "partner", ReferralStatus.accepted, False),
        ("decline", "partner", ReferralStatus.sent, True),
        ("contact", "partner", ReferralStatus.sent, False),
        ("contact", "partner", ReferralStatus.accepted, True),
        ("outcome", "partner", ReferralStatus.accepted, True),
        ("outcome", "partner", ReferralStatus.closed, False),
        ("outcome", "referrer", ReferralStatus.accepted, False),
        ("close", "referrer", ReferralStatus.sent, True),
        ("close", "referrer", ReferralStatus.accepted, True),
        ("close", "referrer", ReferralStatus.declined, False),
        ("close", "partner", ReferralStatus.accepted, False),
    ],
)
def test_who_may_move_a_referral_where(move, side, status, allowed):
    assert (refuse_move(move, side, status) is None) is allowed


@pytest.mark.parametrize("status", list(ReferralStatus))
@pytest.mark.parametrize("partners_now", [True, False])
def test_the_partner_reads_only_open_referrals_of_current_partners(status, partners_now):
    assert partner_can_read(status, partners_now) is (status in OPEN_REFERRAL and partners_now)
