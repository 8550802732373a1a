"""The resident card's "latest check-in": the newest word about the resident, whatever it was.

A check-in's state is fixed when it closes: a resident who said "fine" and an hour later
asks for help still has a check-in closed as fine. The card must not read "fine" then
(issue 17, item 9), so it shows whichever is newest of the check-in's state, the resident's
last reply (to any check-in, or to none) and the last outcome recorded for a case.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlmodel import Session

from service.checkins.models import CheckIn, TimelineEvent
from service.common import aware
from service.web import labels

# Replies that say how the resident is; a language change or START says nothing about it.
_TELLING_REPLIES = {"fine", "help", "talk", "unclear", "stop"}
# How many of the newest replies and outcomes to look through for one that says something.
_LOOK_BACK = 20


@dataclass(frozen=True, slots=True)
class Latest:
    """What the card shows: a dashboard message id (translated by the template), whether it
    is a visit's outcome, and when (None: no time to show)."""

    label: str
    at: datetime | None
    is_outcome: bool = False


def latest_word(session: Session, resident_id: uuid.UUID, checkin: CheckIn | None) -> Latest | None:
    """The newest of: ``checkin``'s state (the resident's current check-in), their last
    reply, and the last outcome recorded for one of their cases. On a tie the reply or the
    outcome wins, being the more specific."""
    candidates: list[tuple[datetime, int, Latest]] = []
    if checkin is not None:
        at = aware(checkin.closed_at) or aware(checkin.created_at)
        assert at is not None
        state = labels.label(labels.CHECKIN_STATES, checkin.state)
        candidates.append((at, 0, Latest(state, aware(checkin.replied_at))))
    events = session.execute(
        select(TimelineEvent)
        .where(
            TimelineEvent.resident_id == resident_id,
            or_(
                TimelineEvent.kind.like("reply.%"),  # type: ignore[attr-defined]
                TimelineEvent.kind == "escalation.resolved",
            ),
        )
        .order_by(TimelineEvent.at.desc())  # type: ignore[attr-defined]
        .limit(_LOOK_BACK)
    ).scalars()
    for event in events:
        at = aware(event.at)
        assert at is not None
        if event.kind == "escalation.resolved" and event.detail.get("outcome"):
            outcome = labels.label(labels.OUTCOMES, event.detail["outcome"])
            candidates.append((at, 1, Latest(outcome, at, is_outcome=True)))
            break
        said = event.detail.get("class")
        if event.kind.startswith("reply.") and said in _TELLING_REPLIES:
            candidates.append((at, 1, Latest(labels.label(labels.REPLY_CLASSES, said), at)))
            break
    if not candidates:
        return None
    return max(candidates, key=lambda candidate: candidate[:2])[2]
