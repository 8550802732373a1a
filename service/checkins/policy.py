"""The check-in rules as pure functions over plain values: what happens when a check-in is
due (the plan), and what a resident's reply does (the reply rules).

Nothing here touches the database or the clock, in the manner of ``service.jma.policy``:
the service layer loads the inputs, calls :func:`decide_due` or :func:`decide_reply`, and
applies the decision (rows, outbox, audit). Every rule is pinned by a table of cases in
``tests/checkins/test_policy.py``.

The rule that keeps residents safe is here once, in :func:`closes_as_fine`: only a clear
"I'm fine" closes a check-in as safe. The single path (``replies.handle_resident_reply``)
and the bulk path (``events._close_plain_fine_replies``) both act on :func:`decide_reply`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from i18n.classifier import ReplyKind
from service.checkins.models import AttemptStatus, CheckInState, TaskKind
from service.escalations.models import EscalationReason
from service.registry.models import Channel, ResidentStatus
from service.registry.phones import PhoneKind

if TYPE_CHECKING:
    from service.checkins.models import Schedule

# --- Time helpers -------------------------------------------------------------------------------


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(now: datetime, tz: str, start: str, end: str) -> bool:
    local = now.astimezone(ZoneInfo(tz)).time()
    begin, finish = _hhmm(start), _hhmm(end)
    if begin == finish:
        return False
    if begin < finish:
        return begin <= local < finish
    return local >= begin or local < finish


def quiet_hours_end(now: datetime, tz: str, end: str) -> datetime:
    """The next moment routine rounds may send again."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), _hhmm(end), zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), _hhmm(end), zone)
    return candidate.astimezone(now.tzinfo)


def next_run_after(schedule: Schedule, after: datetime, tz: str) -> datetime:
    zone = ZoneInfo(tz)
    local = after.astimezone(zone)
    at = _hhmm(schedule.time_of_day)
    for offset in range(0, 8):
        day = local.date() + timedelta(days=offset)
        candidate = datetime.combine(day, at, zone)
        if candidate > local and day.weekday() in schedule.weekdays:
            return candidate.astimezone(after.tzinfo)
    raise ValueError("schedule has no weekdays")  # pragma: no cover - validated on input


# --- Plans ----------------------------------------------------------------------------------------


def resident_plan(
    plan: list[dict[str, Any]],
    resident_channel: str,
    phone_kind: str | None,
    phone2_kind: str | None,
    apps: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Fit the schedule's plan to one resident: landlines and voice-preferring residents get
    calls where the plan says SMS; nobody is sent an SMS to a number that cannot take one.
    A resident who prefers SMS, or both, follows the plan as written: it already mixes the
    two (SMS, an SMS reminder, then a call), and a call stays the fallback for silence.

    ``apps``: the messaging apps the resident asked for, in their order, that can reach
    them (``registry.channels.app_chain``). The plan's first message then goes to the
    first app; each later app, and the plan's own first step, is a fallback
    (:func:`with_app_chain`)."""
    voice_only = reached_by_voice_only(resident_channel, phone_kind, phone2_kind)
    out = []
    for step in plan:
        step = dict(step)
        if step["channel"] == "sms" and voice_only:
            step["channel"] = "voice"
        out.append(step)
    return with_app_chain(out, apps)


# A plan step taken only when the attempt before it failed for good (an app message not
# delivered): otherwise it is skipped, and the plan goes on as written.
FALLBACK: Final = "fallback"


def with_app_chain(plan: list[dict[str, Any]], apps: Sequence[str]) -> list[dict[str, Any]]:
    """The plan with its first message sent on the resident's messaging apps first:
    ``[app1, app2 (fallback), ..., first step (fallback), rest of the plan]``.

    The first app gets the first step's wait. An app message that is not delivered (the
    channel reports failure) moves the check-in on at once to the next app, and after
    the last to the plan's own first step (SMS or a call): nobody falls silent because
    an app failed. An app message that was delivered skips the fallbacks; silence then
    meets the plan's reminders and call as written, in the same total time as before."""
    if not apps or not plan:
        return plan
    first = plan[0]
    chain = [
        {
            "channel": app,
            "message": first.get("message", "prompt"),
            "wait_minutes": first["wait_minutes"],
        }
        for app in apps
    ]
    for step in chain[1:]:
        step[FALLBACK] = True
    return [chain[0], *chain[1:], {**first, FALLBACK: True}, *plan[1:]]


# An attempt whose message will not reach the resident: its fallbacks are taken.
UNDELIVERED: Final = frozenset({AttemptStatus.failed.value})


def fallback_reach(
    plan: Sequence[Mapping[str, Any]],
    step_index: int,
    reach: list[tuple[str, str] | None],
    current_failed: bool,
) -> list[tuple[str, str] | None]:
    """``reach`` with the fallback steps closed unless the current step's attempt failed
    for good: a fallback is for an undelivered message, never for silence."""
    if current_failed:
        return reach
    return [
        None if index > step_index and plan[index].get(FALLBACK) else found
        for index, found in enumerate(reach)
    ]


def reached_by_voice_only(
    resident_channel: str, phone_kind: str | None, phone2_kind: str | None
) -> bool:
    """A resident with no mobile (landlines only), or who asked to be called, is never
    sent an SMS, so nothing said to them may ask for one."""
    has_mobile = PhoneKind.mobile in (phone_kind, phone2_kind)
    return not has_mobile or resident_channel == Channel.voice


# --- The plan: what happens when a check-in is due ------------------------------------------------

# A step taken more than this long after its deadline is recorded as late (the scheduler was
# down, or behind).
LATE_AFTER: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A round's quiet hours, in its organization's time zone ("21:00" to "08:00")."""

    tz: str
    start: str
    end: str

    def hold_until(self, now: datetime) -> datetime | None:
        """When a message may go, if ``now`` is inside quiet hours; None outside them."""
        if not in_quiet_hours(now, self.tz, self.start, self.end):
            return None
        return quiet_hours_end(now, self.tz, self.end)


class Next(StrEnum):
    SEND = "send"  # the next attempt goes out now
    HOLD = "hold"  # quiet hours: the check-in waits, unchanged, until they end
    ESCALATE = "escalate"  # the plan has run out without an answer


@dataclass(frozen=True, slots=True)
class DueDecision:
    """What the sweep does with one due check-in."""

    next: Next
    late_seconds: int | None  # how late the step is taken, if more than LATE_AFTER
    step_index: int  # the step now current (the one sent, for SEND)
    next_action_at: datetime | None = None  # the new deadline (SEND, HOLD)
    step: Mapping[str, Any] | None = None  # the plan step sent, with the channel it goes by
    phone: str | None = None  # the number it goes to (SEND)
    by_call_instead: bool = False  # an SMS step sent as a call: its number takes no SMS now


def late_seconds(due: datetime, now: datetime) -> int | None:
    lateness = now - due
    return round(lateness.total_seconds()) if lateness > LATE_AFTER else None


def decide_due(
    plan: Sequence[Mapping[str, Any]],
    step_index: int,
    reach: Sequence[tuple[str, str] | None],
    *,
    due: datetime,
    now: datetime,
    quiet: QuietHours | None,
) -> DueDecision:
    """The next step of a due check-in.

    ``reach[i]`` is how plan step ``i`` can reach the resident, ``(channel, number)``, or
    None when it cannot (``attempts.reachable_by``: no mobile for an SMS, every number dead).
    Steps that cannot reach the resident are skipped; past the last step, the check-in is
    escalated, at once and whatever the hour (an escalation is not a message to the
    resident). Otherwise, in quiet hours (``quiet`` is None when the round overrides
    them), the check-in is held until they end; else the next reachable step is sent and
    its wait is the new deadline.
    """
    late = late_seconds(due, now)
    following = step_index + 1
    while following < len(plan) and reach[following] is None:
        following += 1
    if following >= len(plan):
        return DueDecision(Next.ESCALATE, late, step_index)
    held = quiet.hold_until(now) if quiet is not None else None
    if held is not None:
        return DueDecision(Next.HOLD, late, step_index, next_action_at=held)
    planned = plan[following]
    found = reach[following]
    assert found is not None
    channel, phone = found
    by_call = channel != planned["channel"]
    if by_call:
        planned = {**planned, "channel": channel}
    return DueDecision(
        Next.SEND,
        late,
        following,
        next_action_at=now + timedelta(minutes=int(planned["wait_minutes"])),
        step=planned,
        phone=phone,
        by_call_instead=by_call,
    )


@dataclass(frozen=True, slots=True)
class Exhausted:
    """How a check-in whose plan ran out is closed, and why its case is opened."""

    state: CheckInState
    reason: EscalationReason


_FAILED: Final = frozenset({AttemptStatus.failed.value, AttemptStatus.no_answer.value})


def plan_exhausted(attempt_statuses: Iterable[str]) -> Exhausted:
    """No answer after the whole plan: unreachable when every attempt failed (and there was
    one), otherwise no reply. Either way a person goes to see."""
    tried = [str(s) for s in attempt_statuses]
    if tried and all(s in _FAILED for s in tried):
        return Exhausted(CheckInState.unreachable, EscalationReason.unreachable)
    return Exhausted(CheckInState.no_reply, EscalationReason.no_reply)


def retry_at_once(waiting: bool, current_step: int, failed_step: int) -> bool:
    """An attempt failed for good: the check-in moves on now, instead of waiting out the
    step, if it is still waiting on that very step."""
    return waiting and current_step == failed_step


# --- The reply rules: what a resident's reply does ------------------------------------------------


class Standing(StrEnum):
    """Where the check-in a reply answers stands."""

    NONE = "none"  # the resident has no check-in (a message out of the blue)
    WAITING = "waiting"  # asked, and no answer yet
    CLOSED = "closed"  # answered, escalated or run out already


@dataclass(frozen=True, slots=True)
class ReplySituation:
    """The resident's situation when their reply is acted on."""

    checkin: Standing
    open_case: bool = False  # an escalation about them is open
    opted_out: bool = False
    needs_interpreter: bool = False
    # Several residents on one phone are waiting: the reply does not say whose it is.
    shared_phone: bool = False


@dataclass(frozen=True, slots=True)
class TaskOrder:
    kind: TaskKind
    # Assigned to a supporter who speaks the resident's language, asked by SMS to call.
    interpreter: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CaseOrder:
    """Open (or renew) the resident's escalation."""

    reason: EscalationReason
    link_checkin: bool  # the waiting check-in it closes records the case
    reply_is_last_contact: bool  # the reply is the resident's last contact, for the alert


@dataclass(frozen=True, slots=True)
class ReplyDecision:
    answer_id: str  # the message the resident is answered with
    record_reply: bool = False  # the check-in shows this reply as its latest
    close_as: CheckInState | None = None  # the waiting check-in is closed so
    case: CaseOrder | None = None
    tasks: tuple[TaskOrder, ...] = ()
    # A reply while a case is open: whoever holds it is told (this answer id); when nobody
    # does, staff get a late_reply task. The case itself stays open.
    tell_holder: str | None = None
    flag_checkin: bool = False  # the check-in is marked for staff: not an answer
    set_language: str | None = None
    set_status: ResidentStatus | None = None
    needs_staff: bool = False  # the message itself goes on staff's list

    @property
    def is_plain_fine(self) -> bool:
        """Closes the check-in as fine and does nothing else: what the bulk path may do
        for many replies at once."""
        return self == PLAIN_FINE


# The answer to each kind of reply (``replies.resident_reply_text`` renders it).
_ANSWER_IDS: Final[Mapping[ReplyKind, str]] = {
    ReplyKind.STOP: "resident.optout",
    ReplyKind.START: "resident.optin",
    ReplyKind.FINE: "resident.reply.ok",
    ReplyKind.HELP: "resident.reply.help",
    ReplyKind.TALK: "resident.reply.talk",
}
UNCLEAR_ANSWER: Final = "resident.reply.unclear"
# A clear "I'm fine" to a waiting check-in, with no case open: closed as ok, nothing else.
PLAIN_FINE: Final = ReplyDecision(
    answer_id=_ANSWER_IDS[ReplyKind.FINE], record_reply=True, close_as=CheckInState.ok
)
LANGUAGE_CHANGED: Final = "resident.language_changed"

# What the member holding a case is told of a late reply, by kind.
HOLDER_NOTICE_IDS: Final[Mapping[ReplyKind, str]] = {
    ReplyKind.FINE: "answer.ok",
    ReplyKind.HELP: "answer.help",
    ReplyKind.TALK: "answer.talk",
    ReplyKind.UNCLEAR: "answer.unclear",
}


def answer_id(kind: ReplyKind, new_language: str | None = None) -> str:
    """The answer to a reply. It depends on what the reply says and nothing else, so the
    webhook can answer at once, before the reply is acted on."""
    if kind == ReplyKind.CHANGE_LANGUAGE and new_language:
        return LANGUAGE_CHANGED
    return _ANSWER_IDS.get(kind, UNCLEAR_ANSWER)


def closes_as_fine(kind: ReplyKind) -> bool:
    """The one rule: only a clear "I'm fine" closes a check-in as safe. Anything else,
    a "thanks", a question, a hedge, a digit nobody asked for, closes nothing as safe."""
    return kind == ReplyKind.FINE


def decide_reply(
    kind: ReplyKind, situation: ReplySituation, new_language: str | None = None
) -> ReplyDecision:
    """What a resident's reply (the classifier's ``kind``) does in their ``situation``.

    - FINE closes a waiting check-in as ok (:func:`closes_as_fine`), and nothing else.
    - HELP always opens (or renews) a case, whatever the check-in's state.
    - TALK closes a waiting check-in as "wants to talk" and asks for a call-back (by a
      supporter who speaks their language, if they need an interpreter).
    - UNCLEAR (a "thanks" included) closes nothing: the check-in is flagged, staff get a
      task, and the resident is asked again.
    - STOP opts out: staff get a task, and a waiting check-in goes to the visit list.
    - START opts back in; a language change switches the resident's language.
    - A reply while a case is open is told to whoever holds it; the case stays open.
    - On a shared phone, only a call for help is taken (for everyone waiting on it, by
      the caller); anything else goes to staff and closes nobody's check-in.
    """
    if situation.shared_phone and kind != ReplyKind.HELP:
        note = "shared phone: the reply does not say whose it is"
        return ReplyDecision(
            answer_id=UNCLEAR_ANSWER,
            tasks=(TaskOrder(TaskKind.unclear, note=note),),
            needs_staff=True,
        )
    if kind in (ReplyKind.CHANGE_LANGUAGE, ReplyKind.START, ReplyKind.STOP):
        return _setting_change(kind, situation, new_language)
    return _answer(kind, situation)


def _setting_change(
    kind: ReplyKind, situation: ReplySituation, new_language: str | None
) -> ReplyDecision:
    """A reply that changes the resident's settings, not an answer to the check-in."""
    answer = answer_id(kind, new_language)
    waiting = situation.checkin == Standing.WAITING
    has_checkin = situation.checkin != Standing.NONE
    if kind == ReplyKind.CHANGE_LANGUAGE:
        if new_language:
            return ReplyDecision(answer_id=answer, set_language=new_language)
        # A language nobody could name: not an answer, and not one to record either.
        return ReplyDecision(
            answer_id=answer, tasks=(TaskOrder(TaskKind.unclear),), flag_checkin=has_checkin
        )
    if kind == ReplyKind.START:
        status = ResidentStatus.active if situation.opted_out else None
        return ReplyDecision(answer_id=answer, set_status=status)
    # STOP: nobody is asked by phone any more, so a waiting check-in goes to the visit list.
    return ReplyDecision(
        answer_id=answer,
        record_reply=has_checkin,
        set_status=ResidentStatus.opted_out,
        tasks=(TaskOrder(TaskKind.opt_out),),
        close_as=CheckInState.opted_out if waiting else None,
        case=CaseOrder(EscalationReason.visit_list, link_checkin=True, reply_is_last_contact=False)
        if waiting
        else None,
    )


def _answer(kind: ReplyKind, situation: ReplySituation) -> ReplyDecision:
    """A reply that answers the check-in: fine, help, talk, or unclear."""
    answer = answer_id(kind)
    waiting = situation.checkin == Standing.WAITING
    has_checkin = situation.checkin != Standing.NONE
    tell_holder = HOLDER_NOTICE_IDS.get(kind) if situation.open_case else None
    if closes_as_fine(kind):
        return ReplyDecision(
            answer_id=answer,
            record_reply=has_checkin,
            close_as=CheckInState.ok if waiting else None,
            tell_holder=tell_holder,
        )
    if kind == ReplyKind.HELP:
        return ReplyDecision(
            answer_id=answer,
            record_reply=has_checkin,
            close_as=CheckInState.needs_help if waiting else None,
            case=CaseOrder(
                EscalationReason.needs_help, link_checkin=waiting, reply_is_last_contact=True
            ),
            tell_holder=tell_holder,
        )
    if kind == ReplyKind.TALK:
        return ReplyDecision(
            answer_id=answer,
            record_reply=has_checkin,
            close_as=CheckInState.wants_talk if waiting else None,
            tasks=(TaskOrder(TaskKind.callback, interpreter=situation.needs_interpreter),),
            tell_holder=tell_holder,
        )
    # Unclear (or anything the classifier may add later): ask again, flag it for staff.
    return ReplyDecision(
        answer_id=answer,
        record_reply=has_checkin,
        tasks=(TaskOrder(TaskKind.unclear),),
        flag_checkin=has_checkin,
        tell_holder=tell_holder,
    )
