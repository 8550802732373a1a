"""The plain data the escalation policy (``service.escalations.policy``) decides on: a case
as a frozen snapshot, its chain, the events that happen to it, a member's parsed reply, and
the decision, which the service applies (rows, outbox, audit, timeline).

Nothing here touches the database or the clock. The chain is stored as JSON
(``Escalation.chain``, a list of steps, each a list of recipients); :meth:`Chain.of` and
:meth:`Chain.to_json` convert it.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from service.escalations.models import AlertState, EscalationState, Outcome

#: After the reminder, how long the holder has before the case is handed on.
REMINDER_GRACE: Final = timedelta(hours=1)


# --------------------------------------------------------------------------- the chain


@dataclass(frozen=True, slots=True)
class Recipient:
    """One member of a step, as copied when the escalation started. A partner
    organization's member (a shared interpreter) carries their organization's id and name."""

    member_id: uuid.UUID
    name: str
    phone: str
    language: str = "ja"
    kind: str | None = None
    phone_kind: str | None = None
    organization_id: str | None = None
    organization: str | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Recipient:
        return cls(
            member_id=uuid.UUID(str(data["member_id"])),
            name=data.get("name", ""),
            phone=data.get("phone", ""),
            language=data.get("language") or "ja",
            kind=data.get("kind"),
            phone_kind=data.get("phone_kind"),
            organization_id=data.get("organization_id"),
            organization=data.get("organization"),
        )

    def to_json(self) -> dict[str, Any]:
        data = {
            "member_id": str(self.member_id),
            "name": self.name,
            "phone": self.phone,
            "language": self.language,
            "kind": self.kind,
            "phone_kind": self.phone_kind,
        }
        if self.organization_id is not None:  # a partner's member
            data["organization_id"] = self.organization_id
            data["organization"] = self.organization
        return data


@dataclass(frozen=True, slots=True)
class Chain:
    """The steps of members to alert, in order, and the case's timings."""

    steps: tuple[tuple[Recipient, ...], ...]
    ack_window: timedelta = timedelta(minutes=30)  # each step waits this long for a "1"
    outcome_time: timedelta = timedelta(hours=4)  # the holder's time to send the result
    reminder_grace: timedelta = REMINDER_GRACE  # after the reminder, before the hand-on

    @classmethod
    def of(
        cls, steps: Sequence[Sequence[Mapping[str, Any]]], *, ack_minutes: int, outcome_hours: int
    ) -> Chain:
        return cls(
            tuple(tuple(Recipient.of(r) for r in step) for step in steps),
            timedelta(minutes=ack_minutes),
            timedelta(hours=outcome_hours),
        )

    def to_json(self) -> list[list[dict[str, Any]]]:
        return [[r.to_json() for r in step] for step in self.steps]

    def __len__(self) -> int:
        return len(self.steps)

    def inserted(self, at: int, recipient: Recipient) -> Chain:
        """The chain with a step of its own for ``recipient`` at ``at``."""
        steps = (*self.steps[:at], (recipient,), *self.steps[at:])
        return Chain(steps, self.ack_window, self.outcome_time, self.reminder_grace)


# --------------------------------------------------------------------------- the case


@dataclass(frozen=True, slots=True)
class AlertFact:
    """One alert of the case; ``waiting`` while it still waits for the member's answer."""

    alert_id: uuid.UUID
    member_id: uuid.UUID
    step: int
    waiting: bool = True


@dataclass(frozen=True, slots=True)
class Case:
    """What the policy knows of one case. ``alerts`` are all its alerts, oldest first."""

    code: str
    state: EscalationState
    step: int
    chain: Chain
    holder: uuid.UUID | None = None
    taken_at: datetime | None = None
    reminded_at: datetime | None = None
    due_at: datetime | None = None
    outcome: Outcome | None = None
    outcome_note: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    alerts: tuple[AlertFact, ...] = ()

    @property
    def waiting(self) -> tuple[AlertFact, ...]:
        return tuple(a for a in self.alerts if a.waiting)


class Relation(StrEnum):
    """A member's relation to an open case (protocol v2)."""

    ALERTED = "alerted"  # an alert to them waits for "1" or "2", the case alerting
    HOLDER = "holder"  # the case is acknowledged by them (by their "1", or by staff)
    FORMER = "former"  # they were alerted about it, but it no longer waits for them


def relation(case: Case, member_id: uuid.UUID) -> Relation:
    if case.state == EscalationState.acknowledged and case.holder == member_id:
        return Relation.HOLDER
    if case.state == EscalationState.alerting and any(
        a.member_id == member_id for a in case.waiting
    ):
        return Relation.ALERTED
    return Relation.FORMER


# --------------------------------------------------------------------------- a member's reply


class Order(StrEnum):
    DIGIT_FIRST = "digit_first"  # "1", "1 A7": an answer to an alert (or a hand-back)
    CODE_FIRST = "code_first"  # "A7 1": the result of a visit


@dataclass(frozen=True, slots=True)
class MemberReply:
    digit: str  # "1" to "5"
    code: str | None  # the case code, upper case
    order: Order


_BIDI_MARKS: Final = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Code first needs a space (or ":", "-") before the digit: "A71" is case A71, never "A7 1".
_REPLY: Final = re.compile(r"^(?:([a-z]\d{1,3})\s+)?([1-5])(?:\s*([a-z]\d{1,3}))?$")


def parse_reply(text: str) -> MemberReply | None:
    """ "1", "1 A7", "１　ａ７", "1-A7" (digit first); "A7 1", "A7:1" (code first)."""
    # Direction marks (a reply copied from a right-to-left text, e.g. Urdu) are not words.
    normalized = _BIDI_MARKS.sub("", unicodedata.normalize("NFKC", text)).strip().lower()
    normalized = re.sub(r"[\s,.、。:;!！-]+", " ", normalized).strip()
    match = _REPLY.match(normalized)
    if not match:
        return None
    before, digit, after = match.groups()
    if before and after:
        return None  # "A7 1 B3": two codes
    code = before or after
    order = Order.CODE_FIRST if before else Order.DIGIT_FIRST
    return MemberReply(digit, code.upper() if code else None, order)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Due:
    """The sweep found the case's next action due."""


@dataclass(frozen=True, slots=True)
class MemberAnswered:
    """A member's SMS, parsed, about this case."""

    member_id: uuid.UUID
    reply: MemberReply
    actor: str


@dataclass(frozen=True, slots=True)
class KeypadAnswered:
    """A member pressed 1 or 2 on the call for one alert."""

    alert_id: uuid.UUID
    member_id: uuid.UUID
    digit: str
    actor: str


@dataclass(frozen=True, slots=True)
class StaffAcknowledged:
    member_id: uuid.UUID
    actor: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class StaffResolved:
    outcome: Outcome
    actor: str
    member_id: uuid.UUID | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class StaffReassigned:
    recipient: Recipient
    actor: str


@dataclass(frozen=True, slots=True)
class AlertFailed:
    """An alert cannot reach its member: it counts as their "2"."""

    alert_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ResidentReplied:
    """The resident answered after the alert went out (``answer`` is a message id)."""

    answer: str


@dataclass(frozen=True, slots=True)
class HandedOn:
    """The holder cannot go: the chain goes on."""

    actor: str


Event = (
    Due
    | MemberAnswered
    | KeypadAnswered
    | StaffAcknowledged
    | StaffResolved
    | StaffReassigned
    | AlertFailed
    | ResidentReplied
    | HandedOn
)


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True, slots=True)
class Notice:
    """An SMS to a member about the case (``answer``: a message id to name in it)."""

    member_id: uuid.UUID
    message_id: str
    answer: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """A timeline entry of the case."""

    kind: str
    member_id: uuid.UUID | None = None
    actor: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Audit:
    actor: str
    action: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewAlert:
    step: int
    recipient: Recipient


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do. ``case`` is the case's new state (None: the row does not change);
    ``answer`` the message ids of the reply to the member, joined by a space."""

    case: Case | None = None
    alert_states: Mapping[uuid.UUID, AlertState] = field(default_factory=dict)
    alerts: tuple[NewAlert, ...] = ()
    notices: tuple[Notice, ...] = ()
    timeline: tuple[Entry, ...] = ()
    answer: tuple[str, ...] = ()
    audit: Audit | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """Which case a member's reply is about: ``code``, or else the answer ``ask``."""

    code: str | None
    ask: str | None = None
    codes: tuple[str, ...] = ()
