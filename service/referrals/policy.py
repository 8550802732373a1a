"""What a referral carries and who may move it where: pure functions over plain data.

No session, no clock. The service loads the resident, the consent and the referral, asks
these functions, and applies the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.referrals.models import OPEN_REFERRAL, ReferralStatus
from service.texts import N_, Text

#: The resident's flags that count as health details: shared only with consent to that.
HEALTH_FLAGS = ("elderly", "disability", "pregnancy", "lives_alone")


@dataclass(frozen=True)
class PersonFacts:
    """What the referring side knows of the resident, as plain values."""

    name: str
    phone: str | None
    site: str | None
    language: str
    notes: str | None
    flags: frozenset[str]


@dataclass(frozen=True)
class ConsentScope:
    share_notes: bool
    share_health: bool


def shared_person(facts: PersonFacts, consent: ConsentScope | None) -> dict[str, Any]:
    """The copy of the resident a referral carries. Without consent, nothing at all; with
    it, name, phone, site and language, and notes and health details only if consented.
    A key that would be empty is left out, so the partner's view never names a field it
    was not given."""
    if consent is None:
        return {}
    person: dict[str, Any] = {"name": facts.name, "language": facts.language}
    if facts.phone:
        person["phone"] = facts.phone
    if facts.site:
        person["site"] = facts.site
    if consent.share_notes and facts.notes:
        person["notes"] = facts.notes
    if consent.share_health:
        health = sorted(flag for flag in facts.flags if flag in HEALTH_FLAGS)
        if health:
            person["health"] = health
    return person


# What each side may do, from which status; the side is "partner" or "referrer".
_MOVES: dict[str, tuple[str, frozenset[ReferralStatus]]] = {
    "accept": ("partner", frozenset({ReferralStatus.sent})),
    "decline": ("partner", frozenset({ReferralStatus.sent})),
    "contact": ("partner", frozenset({ReferralStatus.accepted})),
    "outcome": ("partner", frozenset({ReferralStatus.accepted})),
    "close": ("referrer", OPEN_REFERRAL),
}

#: Where each move leaves the referral (a contact changes no status).
NEXT_STATUS: dict[str, ReferralStatus | None] = {
    "accept": ReferralStatus.accepted,
    "decline": ReferralStatus.declined,
    "contact": None,
    "outcome": ReferralStatus.closed,
    "close": ReferralStatus.closed,
}


def refuse_move(move: str, side: str, status: ReferralStatus) -> Text | None:
    """Why ``side`` may not make ``move`` on a referral in ``status``, or None if it may."""
    allowed_side, allowed = _MOVES[move]
    if side != allowed_side:
        if allowed_side == "partner":
            return N_("only the partner that received the referral can do this")
        return N_("only the organization that sent the referral can do this")
    if status not in allowed:
        return N_("this referral is %(status)s; this step is not possible now", status=str(status))
    return None


def partner_can_read(status: ReferralStatus, partners_now: bool) -> bool:
    """The partner reads a referral only while it is open and the two are still partners."""
    return status in OPEN_REFERRAL and partners_now
