"""The check-in rules (``service.checkins.policy``), table by table.

Most of these are pure-function tests: no database, no clock. They pin the reply rules
(every verdict in every situation: what closes, what escalates, who is told, which task)
and the check-in plan (the order of attempts, quiet hours, exhaustion). The last tests
drive the two real paths that act on stored replies, the bulk close and one reply at a
time, over the database, and show they leave the same rows for the same replies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from i18n.classifier import ReplyKind, classify
from service.checkins import events, flows
from service.checkins.attempts import reachable_by
from service.checkins.models import CheckIn, CheckInState, StaffTask, TaskKind, TimelineEvent
from service.checkins.policy import (
    PLAIN_FINE,
    CaseOrder,
    Exhausted,
    Next,
    QuietHours,
    ReplySituation,
    Standing,
    TaskOrder,
    answer_id,
    closes_as_fine,
    decide_due,
    decide_reply,
    in_quiet_hours,
    late_seconds,
    plan_exhausted,
    quiet_hours_end,
    resident_plan,
    retry_at_once,
)
from service.escalations.models import Escalation, EscalationReason
from service.registry.models import ResidentStatus
from service.telephony.models import InboundMessage, OutboxMessage

W, C, N = Standing.WAITING, Standing.CLOSED, Standing.NONE
FINE, HELP, TALK, UNCLEAR = ReplyKind.FINE, ReplyKind.HELP, ReplyKind.TALK, ReplyKind.UNCLEAR
STOP, START, LANG = ReplyKind.STOP, ReplyKind.START, ReplyKind.CHANGE_LANGUAGE
KINDS = list(ReplyKind)
SITUATIONS = [
    ReplySituation(standing, open_case, opted_out, interpreter)
    for standing, open_case, opted_out, interpreter in itertools.product(
        Standing, (False, True), (False, True), (False, True)
    )
]
HELP_CASE = CaseOrder(EscalationReason.needs_help, link_checkin=True, reply_is_last_contact=True)
HELP_CASE_UNLINKED = CaseOrder(
    EscalationReason.needs_help, link_checkin=False, reply_is_last_contact=True
)
VISIT = CaseOrder(EscalationReason.visit_list, link_checkin=True, reply_is_last_contact=False)
UNCLEAR_TASK = (TaskOrder(TaskKind.unclear),)


# --------------------------------------------------------------------------- the reply rules


@dataclass(frozen=True)
class Row:
    """One line of the reply table: what a reply of ``kind`` does to a check-in that
    stands so, with or without a case open."""

    kind: ReplyKind
    standing: Standing
    open_case: bool
    close_as: CheckInState | None
    case: CaseOrder | None
    tasks: tuple[TaskOrder, ...]
    tell: str | None  # the holder of the open case is told
    flag: bool
    record: bool  # the check-in shows the reply as its latest


# fmt: off
REPLY_TABLE = [
    #   kind     stands  case   close as                    case             tasks              tell            flag   record
    Row(FINE,    W,      False, CheckInState.ok,            None,            (),                None,           False, True),
    Row(FINE,    W,      True,  CheckInState.ok,            None,            (),                "answer.ok",    False, True),
    Row(FINE,    C,      False, None,                       None,            (),                None,           False, True),
    Row(FINE,    C,      True,  None,                       None,            (),                "answer.ok",    False, True),
    Row(FINE,    N,      False, None,                       None,            (),                None,           False, False),
    Row(FINE,    N,      True,  None,                       None,            (),                "answer.ok",    False, False),
    Row(HELP,    W,      False, CheckInState.needs_help,    HELP_CASE,       (),                None,           False, True),
    Row(HELP,    W,      True,  CheckInState.needs_help,    HELP_CASE,       (),                "answer.help",  False, True),
    Row(HELP,    C,      False, None,                       HELP_CASE_UNLINKED, (),             None,           False, True),
    Row(HELP,    C,      True,  None,                       HELP_CASE_UNLINKED, (),             "answer.help",  False, True),
    Row(HELP,    N,      False, None,                       HELP_CASE_UNLINKED, (),             None,           False, False),
    Row(HELP,    N,      True,  None,                       HELP_CASE_UNLINKED, (),             "answer.help",  False, False),
    Row(TALK,    W,      False, CheckInState.wants_talk,    None,            (TaskOrder(TaskKind.callback),), None,          False, True),
    Row(TALK,    W,      True,  CheckInState.wants_talk,    None,            (TaskOrder(TaskKind.callback),), "answer.talk", False, True),
    Row(TALK,    C,      False, None,                       None,            (TaskOrder(TaskKind.callback),), None,          False, True),
    Row(TALK,    N,      True,  None,                       None,            (TaskOrder(TaskKind.callback),), "answer.talk", False, False),
    Row(UNCLEAR, W,      False, None,                       None,            UNCLEAR_TASK,      None,             True,  True),
    Row(UNCLEAR, W,      True,  None,                       None,            UNCLEAR_TASK,      "answer.unclear", True,  True),
    Row(UNCLEAR, C,      False, None,                       None,            UNCLEAR_TASK,      None,             True,  True),
    Row(UNCLEAR, N,      False, None,                       None,            UNCLEAR_TASK,      None,             False, False),
    Row(UNCLEAR, N,      True,  None,                       None,            UNCLEAR_TASK,      "answer.unclear", False, False),
    Row(STOP,    W,      False, CheckInState.opted_out,     VISIT,           (TaskOrder(TaskKind.opt_out),), None,  False, True),
    Row(STOP,    W,      True,  CheckInState.opted_out,     VISIT,           (TaskOrder(TaskKind.opt_out),), None,  False, True),
    Row(STOP,    C,      False, None,                       None,            (TaskOrder(TaskKind.opt_out),), None,  False, True),
    Row(STOP,    N,      True,  None,                       None,            (TaskOrder(TaskKind.opt_out),), None,  False, False),
    Row(START,   W,      False, None,                       None,            (),                None,           False, False),
    Row(START,   C,      True,  None,                       None,            (),                None,           False, False),
    Row(LANG,    W,      True,  None,                       None,            (),                None,           False, False),
    Row(LANG,    N,      False, None,                       None,            (),                None,           False, False),
]
# fmt: on


@pytest.mark.parametrize("row", REPLY_TABLE, ids=lambda r: f"{r.kind}-{r.standing}-{r.open_case}")
def test_the_reply_table(row: Row) -> None:
    decision = decide_reply(row.kind, ReplySituation(row.standing, row.open_case), "en")
    assert decision.close_as == row.close_as
    assert decision.case == row.case
    assert decision.tasks == row.tasks
    assert decision.tell_holder == row.tell
    assert decision.flag_checkin == row.flag
    assert decision.record_reply == row.record


def test_the_table_covers_every_kind() -> None:
    assert {row.kind for row in REPLY_TABLE} == set(ReplyKind)


@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_nothing_but_a_clear_fine_to_a_waiting_checkin_closes_it_as_safe(kind, situation):
    decision = decide_reply(kind, situation, "en")
    closed_ok = decision.close_as == CheckInState.ok
    assert closed_ok == (kind == FINE and situation.checkin == W)
    assert closes_as_fine(kind) == (kind == FINE)
    if decision.close_as is not None:
        assert situation.checkin == W  # only a waiting check-in is ever closed


@pytest.mark.parametrize("situation", SITUATIONS)
def test_a_call_for_help_always_opens_a_case(situation):
    decision = decide_reply(HELP, situation)
    assert decision.case is not None
    assert decision.case.reason == EscalationReason.needs_help
    assert decision.case.reply_is_last_contact
    # The check-in records the case only when the reply closed it.
    assert decision.case.link_checkin == (situation.checkin == W)
    # On a shared phone it is taken for everyone too: the same decision.
    shared = ReplySituation(situation.checkin, situation.open_case, shared_phone=True)
    assert decide_reply(HELP, shared) == decide_reply(
        HELP, ReplySituation(situation.checkin, situation.open_case)
    )


@pytest.mark.parametrize("situation", SITUATIONS)
def test_an_unclear_reply_never_closes_and_always_reaches_staff(situation):
    decision = decide_reply(UNCLEAR, situation)
    assert decision.close_as is None
    assert decision.case is None
    assert decision.tasks == UNCLEAR_TASK
    assert decision.flag_checkin == (situation.checkin != N)
    assert decision.answer_id == "resident.reply.unclear"


def test_a_late_fine_after_an_alert_tells_the_holder_and_leaves_the_case_open():
    """A case is open (the chain alerted a member): a "1" is news for the member, and it
    closes only the check-in still waiting, never the case (no case order at all)."""
    for standing in Standing:
        decision = decide_reply(FINE, ReplySituation(standing, open_case=True))
        assert decision.tell_holder == "answer.ok"
        assert decision.case is None
        assert not decision.is_plain_fine


@pytest.mark.parametrize(
    ("situation", "plain"),
    [
        (ReplySituation(W), True),
        (ReplySituation(W, opted_out=True), True),
        (ReplySituation(W, needs_interpreter=True), True),
        (ReplySituation(W, open_case=True), False),  # a late reply: the member must hear
        (ReplySituation(C), False),
        (ReplySituation(N), False),
        (ReplySituation(W, shared_phone=True), False),
    ],
)
def test_only_a_fine_to_a_waiting_checkin_with_no_case_is_plain(situation, plain):
    """What the bulk path may close together: exactly PLAIN_FINE, nothing else."""
    assert decide_reply(FINE, situation).is_plain_fine is plain
    assert all(not decide_reply(k, situation).is_plain_fine for k in KINDS if k != FINE)


@pytest.mark.parametrize(
    ("text", "language", "closes"),
    [
        ("1", "ja", True),
        ("元気です", "ja", True),
        ("おかげさまで元気", "ja", True),
        ("fine", "en", True),
        ("2", "ja", False),  # help
        ("12", "ja", False),  # two menu digits: read as help, never as fine
        ("3", "ja", False),  # talk
        ("4", "ja", False),  # a digit nobody offered
        ("1?", "ja", False),  # a question
        ("ありがとう", "ja", False),  # thanks is not an answer
        ("thanks", "en", False),
        ("元気かな", "ja", False),  # a hedge
        ("大丈夫じゃない", "ja", False),  # negated
        ("not fine", "en", False),
        ("", "ja", False),
        ("STOP", "ja", False),
    ],
)
def test_what_residents_write_and_whether_it_closes_the_checkin(text, language, closes):
    kind = classify(text, language).kind
    decision = decide_reply(kind, ReplySituation(W))
    assert (decision.close_as == CheckInState.ok) is closes
    assert decision.is_plain_fine is closes


@pytest.mark.parametrize("kind", [k for k in KINDS if k != HELP])
def test_on_a_shared_phone_only_help_is_taken_anything_else_goes_to_staff(kind):
    decision = decide_reply(kind, ReplySituation(W, shared_phone=True), "en")
    assert decision.close_as is None and decision.case is None
    assert decision.needs_staff
    assert [t.kind for t in decision.tasks] == [TaskKind.unclear]
    assert decision.tasks[0].note
    assert decision.answer_id == "resident.reply.unclear"


def test_a_call_back_goes_to_an_interpreter_when_the_resident_needs_one():
    for needs in (False, True):
        decision = decide_reply(TALK, ReplySituation(W, needs_interpreter=needs))
        assert decision.tasks == (TaskOrder(TaskKind.callback, interpreter=needs),)


@pytest.mark.parametrize(
    ("kind", "opted_out", "status"),
    [
        (STOP, False, ResidentStatus.opted_out),
        (STOP, True, ResidentStatus.opted_out),
        (START, True, ResidentStatus.active),
        (START, False, None),  # not opted out: nothing to change
        (FINE, True, None),  # an answer does not opt anyone back in
    ],
)
def test_opting_out_and_back_in(kind, opted_out, status):
    assert decide_reply(kind, ReplySituation(W, opted_out=opted_out)).set_status == status


def test_a_language_change_switches_the_language_and_nothing_else():
    decision = decide_reply(LANG, ReplySituation(W, open_case=True), "vi")
    assert decision.set_language == "vi"
    assert decision.answer_id == "resident.language_changed"
    assert (decision.close_as, decision.case, decision.tasks, decision.record_reply) == (
        None,
        None,
        (),
        False,
    )
    # One nobody could name is not an answer: asked again, flagged, nothing recorded.
    unnamed = decide_reply(LANG, ReplySituation(W), None)
    assert unnamed.set_language is None and unnamed.close_as is None
    assert unnamed.tasks == UNCLEAR_TASK and unnamed.flag_checkin
    assert unnamed.answer_id == "resident.reply.unclear"


@pytest.mark.parametrize(
    ("kind", "language", "message_id"),
    [
        (FINE, None, "resident.reply.ok"),
        (HELP, None, "resident.reply.help"),
        (TALK, None, "resident.reply.talk"),
        (UNCLEAR, None, "resident.reply.unclear"),
        (STOP, None, "resident.optout"),
        (START, None, "resident.optin"),
        (LANG, "en", "resident.language_changed"),
        (LANG, None, "resident.reply.unclear"),
    ],
)
def test_the_answer_depends_only_on_what_the_reply_says(kind, language, message_id):
    assert answer_id(kind, language) == message_id
    for situation in SITUATIONS:
        assert decide_reply(kind, situation, language).answer_id == message_id


situations = st.builds(
    ReplySituation,
    checkin=st.sampled_from(Standing),
    open_case=st.booleans(),
    opted_out=st.booleans(),
    needs_interpreter=st.booleans(),
    shared_phone=st.booleans(),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    situation=situations,
    language=st.one_of(st.none(), st.sampled_from(["en", "vi", "ja"])),
)
def test_property_no_verdict_but_a_clear_fine_ever_closes_a_checkin_as_safe(
    kind, situation, language
):
    decision = decide_reply(kind, situation, language)
    if kind != FINE:
        assert decision.close_as != CheckInState.ok
        assert not decision.is_plain_fine
    if decision.close_as is not None:
        assert situation.checkin == W
    if situation.shared_phone:  # whose reply it is is unknown: only a call for help acts
        assert decision.close_as in (None, CheckInState.needs_help)
    if kind == HELP:
        assert decision.case is not None  # when in doubt, escalate: help always does
    # No resident silently falls out: a check-in closed as anything but fine leaves
    # something for a person, a case or a task.
    if decision.close_as not in (None, CheckInState.ok):
        assert decision.case is not None or decision.tasks
    # What the bulk path closes is exactly a clear fine to a waiting check-in, no case.
    if decision == PLAIN_FINE:
        assert kind == FINE and situation.checkin == W and not situation.open_case


# --------------------------------------------------------------------------- the plan

TOKYO = "Asia/Tokyo"
PLAN = [
    {"channel": "sms", "message": "prompt", "wait_minutes": 60},
    {"channel": "sms", "message": "reminder", "wait_minutes": 60},
    {"channel": "voice", "message": "prompt", "wait_minutes": 30},
]
MOBILE = ("sms", "+819010000001")
CALL = ("voice", "+819010000001")
NIGHT = QuietHours(TOKYO, "21:00", "08:00")


def tokyo(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


@pytest.mark.parametrize(
    ("step_index", "reach", "next_", "sent_step", "channel", "wait"),
    [
        (0, [MOBILE, MOBILE, CALL], Next.SEND, 1, "sms", 60),  # the SMS reminder
        (1, [MOBILE, MOBILE, CALL], Next.SEND, 2, "voice", 30),  # then a call
        (2, [MOBILE, MOBILE, CALL], Next.ESCALATE, 2, None, None),  # the plan has run out
        (0, [MOBILE, None, CALL], Next.SEND, 2, "voice", 30),  # a step that cannot reach is skipped
        (0, [MOBILE, None, None], Next.ESCALATE, 0, None, None),  # nothing left that reaches
        (0, [MOBILE, CALL, CALL], Next.SEND, 1, "voice", 60),  # SMS number dead: called instead
    ],
)
def test_the_order_of_attempts(step_index, reach, next_, sent_step, channel, wait):
    now = tokyo(11)
    decision = decide_due(PLAN, step_index, reach, due=now, now=now, quiet=NIGHT)
    assert (decision.next, decision.step_index) == (next_, sent_step)
    if next_ is Next.SEND:
        assert decision.step is not None and decision.step["channel"] == channel
        assert decision.step["message"] == PLAN[sent_step]["message"]
        assert decision.phone == reach[sent_step][1]
        assert decision.next_action_at == now + timedelta(minutes=wait)
        assert decision.by_call_instead == (PLAN[sent_step]["channel"] != channel)
    else:
        assert decision.step is None and decision.next_action_at is None


def test_a_step_due_in_quiet_hours_waits_for_the_morning_unless_the_round_overrides_them():
    night = tokyo(23, 30)
    held = decide_due(PLAN, 0, [MOBILE] * 3, due=night, now=night, quiet=NIGHT)
    assert held.next is Next.HOLD
    assert held.step_index == 0 and held.step is None
    assert held.next_action_at == tokyo(8, day=2)
    sent = decide_due(PLAN, 0, [MOBILE] * 3, due=night, now=night, quiet=None)
    assert sent.next is Next.SEND and sent.step_index == 1


def test_an_exhausted_plan_escalates_at_once_even_in_quiet_hours():
    night = tokyo(2)
    decision = decide_due(PLAN, 2, [MOBILE] * 3, due=night, now=night, quiet=NIGHT)
    assert decision.next is Next.ESCALATE


@pytest.mark.parametrize(
    ("late_by", "recorded"),
    [
        (timedelta(0), None),
        (timedelta(seconds=60), None),
        (timedelta(seconds=61), 61),
        (timedelta(hours=2), 7200),
    ],
)
def test_a_step_taken_late_says_how_late(late_by, recorded):
    now = tokyo(11)
    assert late_seconds(now - late_by, now) == recorded
    decision = decide_due(PLAN, 0, [MOBILE] * 3, due=now - late_by, now=now, quiet=None)
    assert decision.late_seconds == recorded


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        ([], Exhausted(CheckInState.no_reply, EscalationReason.no_reply)),
        (
            ["delivered", "delivered", "answered"],
            Exhausted(CheckInState.no_reply, EscalationReason.no_reply),
        ),
        (["failed", "delivered"], Exhausted(CheckInState.no_reply, EscalationReason.no_reply)),
        (
            ["failed", "no_answer"],
            Exhausted(CheckInState.unreachable, EscalationReason.unreachable),
        ),
        (["failed"], Exhausted(CheckInState.unreachable, EscalationReason.unreachable)),
        (["machine"], Exhausted(CheckInState.no_reply, EscalationReason.no_reply)),
    ],
)
def test_an_exhausted_plan_is_unreachable_only_when_every_attempt_failed(statuses, outcome):
    assert plan_exhausted(statuses) == outcome


@pytest.mark.parametrize(
    ("waiting", "current", "failed", "now"),
    [(True, 1, 1, True), (True, 2, 1, False), (False, 1, 1, False)],
)
def test_a_failed_attempt_moves_its_checkin_on_at_once_only_on_its_own_step(
    waiting, current, failed, now
):
    assert retry_at_once(waiting, current, failed) is now


@pytest.mark.parametrize(
    ("local", "start", "end", "quiet"),
    [
        ((22, 0), "21:00", "08:00", True),
        ((21, 0), "21:00", "08:00", True),  # the start is inside
        ((8, 0), "21:00", "08:00", False),  # the end is outside
        ((7, 59), "21:00", "08:00", True),
        ((12, 0), "21:00", "08:00", False),
        ((13, 0), "12:00", "14:00", True),  # a window that does not wrap midnight
        ((15, 0), "12:00", "14:00", False),
        ((3, 0), "00:00", "00:00", False),  # equal: no quiet hours
    ],
)
def test_quiet_hours(local, start, end, quiet):
    assert in_quiet_hours(tokyo(*local), TOKYO, start, end) is quiet


@pytest.mark.parametrize(
    ("local", "end", "expected"),
    [
        ((23, 0), "08:00", tokyo(8, day=2)),
        ((7, 0), "08:00", tokyo(8)),
        ((8, 0), "08:00", tokyo(8, day=2)),
    ],
)
def test_quiet_hours_end_is_the_next_end(local, end, expected):
    assert quiet_hours_end(tokyo(*local), TOKYO, end) == expected


@pytest.mark.parametrize(
    ("channel", "kind1", "kind2", "channels"),
    [
        ("sms", "mobile", None, ["sms", "sms", "voice"]),
        ("both", "landline", "mobile", ["sms", "sms", "voice"]),
        ("sms", "landline", None, ["voice", "voice", "voice"]),  # no mobile: calls only
        ("voice", "mobile", None, ["voice", "voice", "voice"]),  # asked to be called
    ],
)
def test_the_plan_fitted_to_a_resident(channel, kind1, kind2, channels):
    assert [s["channel"] for s in resident_plan(PLAN, channel, kind1, kind2)] == channels


@dataclass(frozen=True)
class Phones:
    phone: str | None
    phone_kind: str | None
    phone2: str | None = None
    phone2_kind: str | None = None


@pytest.mark.parametrize(
    ("phones", "channel", "dead", "reach"),
    [
        (Phones("+81901", "mobile"), "sms", {}, ("sms", "+81901")),
        (Phones("+81901", "mobile"), "sms", {"+81901": 21610}, ("voice", "+81901")),
        (Phones("+81901", "mobile"), "sms", {"+81901": 21211}, None),  # invalid: nothing
        (Phones("+81768", "landline"), "sms", {}, None),  # an SMS step cannot reach a landline
        (Phones("+81768", "landline"), "voice", {}, ("voice", "+81768")),
        (
            Phones("+81901", "mobile", "+81902", "mobile"),
            "sms",
            {"+81901": 21610},
            ("sms", "+81902"),
        ),
    ],
)
def test_how_a_step_reaches_a_resident(phones, channel, dead, reach):
    assert reachable_by(phones, channel, dead) == reach


# --------------------------------------------------------------------------- both real paths

BODIES = ["1", "元気です", "2", "3", "ありがとう", "元気かな", "STOP", "English", "12"]
PRIORS = ["none", "help_case", "unclear_first", "answered"]


def _snapshot(world, key: str) -> dict:
    """What acting on a resident's replies left behind, without ids or names."""
    resident_id = world.residents[key]
    with world.session() as s:
        rows = {
            model: s.exec(select(model).where(model.resident_id == resident_id)).all()
            for model in (
                CheckIn,
                InboundMessage,
                TimelineEvent,
                Escalation,
                StaffTask,
                OutboxMessage,
            )
        }
    return {
        "checkins": sorted(
            (
                c.state,
                c.step_index,
                c.next_action_at,
                c.closed_at,
                c.replied_at,
                c.last_reply_kind,
                c.flagged,
                c.escalation_id is not None,
                c.updated_at,
            )
            for c in rows[CheckIn]
        ),
        "replies": sorted(
            (r.body, r.classification, r.needs_staff, r.processed_at) for r in rows[InboundMessage]
        ),
        # Every entry's kind and time; the detail of the resident's own (a member's
        # entries name the member, who differs between the two).
        "timeline": sorted(
            (
                e.kind,
                e.at,
                sorted(e.detail.items()) if e.kind.startswith(("reply", "checkin")) else None,
            )
            for e in rows[TimelineEvent]
        ),
        "escalations": sorted((e.state, e.reason) for e in rows[Escalation]),
        "tasks": sorted((t.kind, t.closed_at) for t in rows[StaffTask]),
        "outbox": sorted((m.purpose, m.status) for m in rows[OutboxMessage]),
    }


@settings(
    derandomize=True,
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prior=st.sampled_from(PRIORS),
    bodies=st.lists(st.sampled_from(BODIES), min_size=1, max_size=2),
)
# The stories where the two paths could part: a plain fine, a fine that is a late reply to
# an open case, a fine to a flagged check-in, to one answered already, and a fine then help.
@example(prior="none", bodies=["1"])
@example(prior="help_case", bodies=["元気です"])
@example(prior="unclear_first", bodies=["1"])
@example(prior="answered", bodies=["1"])
@example(prior="none", bodies=["1", "2"])
def test_property_the_bulk_path_and_one_at_a_time_leave_the_same_rows(world, prior, bodies):
    """Two residents with the same story, the same replies at the same instants: one's
    replies go through ``process_reply_batch`` (the bulk close where it applies), the
    other's through ``process_reply`` one at a time. Both must end the same."""
    n = len(world.residents)
    keys, phones = [], []
    for number in (n + 1, n + 2):
        # Each with a member of their own: one member's SMS cap must not tell them apart.
        key = f"P{number}"
        world.resident(key, f"090-2{number:03d}-0000")
        world.member(f"M{number}", f"080-3{number:03d}-0001")
        world.assign(key, f"M{number}", 1)
        keys.append(key)
        phones.append(f"+81902{number:03d}0000")
    ids = [world.residents[k] for k in keys]
    flows.start_broadcast(
        world.engine,
        organization_id=world.org_id,
        started_by="test",
        now_fn=world.clock.now,
        resident_ids=ids,
    )
    world.tick()
    if prior != "none":
        first = {"help_case": "2", "unclear_first": "えーと", "answered": "1"}[prior]
        for phone in phones:
            world.sms(phone, first)
        world.tick(minutes=1)
        if prior == "help_case":  # a new round while the case is open
            flows.start_broadcast(
                world.engine,
                organization_id=world.org_id,
                started_by="test",
                now_fn=world.clock.now,
                resident_ids=ids,
            )
            world.tick(minutes=1)
    for body in bodies:
        world.clock.advance(seconds=5)
        for phone in phones:
            world.sms(phone, body, act=False)
    world.clock.advance(seconds=2)
    with world.session() as s:
        pending = s.exec(
            select(InboundMessage)
            .where(InboundMessage.processed_at.is_(None))  # type: ignore[union-attr]
            .order_by(InboundMessage.received_at, InboundMessage.id)
        ).all()
        mine = {
            resident_id: [m.id for m in pending if m.resident_id == resident_id]
            for resident_id in ids
        }
    now = world.clock.now()
    with world.session() as s:
        events.process_reply_batch(s, mine[ids[0]], now)
        s.commit()
    with world.session() as s:
        for inbound_id in mine[ids[1]]:
            events.process_reply(s, inbound_id, now)
        s.commit()
    assert _snapshot(world, keys[0]) == _snapshot(world, keys[1])
    # And the rule holds on the rows: a check-in closed as ok was answered by a clear fine
    # (its latest reply may be another: a "2" after the "1" opens a case, the "1" stands).
    with world.session() as s:
        for checkin in s.exec(select(CheckIn).where(CheckIn.resident_id.in_(ids))):  # type: ignore[attr-defined]
            if checkin.state == CheckInState.ok:
                answers = s.exec(
                    select(TimelineEvent).where(TimelineEvent.checkin_id == checkin.id)
                ).all()
                assert any(
                    e.kind.startswith("reply.") and e.detail["class"] == FINE for e in answers
                )


def test_the_bulk_path_closes_plain_fines_together(world, monkeypatch):
    """The comparison above is not empty: plain fines do go through the bulk close (and
    process_reply is not called for them), and its rows equal one-at-a-time rows."""
    world.member("M1", "080-3000-0001")
    for n in (1, 2):
        world.resident(f"Q{n}", f"090-4000-000{n}")
        world.assign(f"Q{n}", "M1", 1)
    flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()
    for n in (1, 2):
        world.sms(f"+81904000000{n}", "元気です", act=False)
    with world.session() as s:
        pending = {m.from_phone: m.id for m in s.exec(select(InboundMessage))}
    called = []
    real = events.process_reply
    monkeypatch.setattr(events, "process_reply", lambda *a: called.append(a) or real(*a))
    now = world.clock.now()
    with world.session() as s:
        assert events.process_reply_batch(s, [pending["+819040000001"]], now) == 1
        s.commit()
    assert called == []
    with world.session() as s:
        assert real(s, pending["+819040000002"], now)
        s.commit()
    assert _snapshot(world, "Q1") == _snapshot(world, "Q2")
    assert _snapshot(world, "Q1")["checkins"][0][0] == CheckInState.ok
