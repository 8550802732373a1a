"""The channel rules as pure functions: a resident's messaging apps come first, each
falling back to the next only when its message was not delivered, and finally to the
plan's own SMS and call. Nobody falls silent because an app failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from service.checkins import policy
from service.checkins.models import DEFAULT_PLAN
from service.registry.channels import app_chain, check_channels, normalize_link_code
from service.texts import TextError

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
LINE_USER = "U" + "a" * 32


def resident(**values):
    base = {
        "phone": "+819012345678",
        "phone_kind": "mobile",
        "phone2": None,
        "phone2_kind": None,
        "line_user_id": None,
    }
    return SimpleNamespace(**{**base, **values})


def test_apps_come_first_and_the_plans_first_step_becomes_their_fallback():
    plan = policy.resident_plan(DEFAULT_PLAN, "sms", "mobile", None, ("line", "whatsapp"))
    assert [(s["channel"], s["message"], bool(s.get(policy.FALLBACK))) for s in plan] == [
        ("line", "prompt", False),
        ("whatsapp", "prompt", True),
        ("sms", "prompt", True),
        ("sms", "reminder", False),
        ("voice", "prompt", False),
    ]
    assert plan[0]["wait_minutes"] == DEFAULT_PLAN[0]["wait_minutes"]


def test_without_apps_the_plan_is_unchanged():
    assert policy.resident_plan(DEFAULT_PLAN, "sms", "mobile", None, ()) == DEFAULT_PLAN


def test_only_apps_that_can_reach_the_resident_are_in_the_chain():
    r = resident()
    assert app_chain(["line", "whatsapp", "sms"], r) == [("whatsapp", "+819012345678")]
    landline = resident(phone_kind="landline", line_user_id=LINE_USER)
    assert app_chain(["whatsapp", "line", "voice"], landline) == [("line", LINE_USER)]


def _due(plan, step_index, reach):
    return policy.decide_due(
        plan, step_index, reach, due=NOW, now=NOW + timedelta(seconds=5), quiet=None
    )


def test_an_undelivered_app_message_falls_back_and_a_delivered_one_meets_the_reminder():
    plan = policy.resident_plan(DEFAULT_PLAN, "sms", "mobile", None, ("line", "whatsapp"))
    reach = [None] + [(s["channel"], "addr") for s in plan[1:]]
    failed = policy.fallback_reach(plan, 0, reach, current_failed=True)
    assert _due(plan, 0, failed).step["channel"] == "whatsapp"
    delivered = policy.fallback_reach(plan, 0, reach, current_failed=False)
    decision = _due(plan, 0, delivered)
    assert (decision.step_index, decision.step["message"]) == (3, "reminder")


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    apps=st.lists(st.sampled_from(["line", "whatsapp"]), unique=True, min_size=1),
    failures=st.lists(st.booleans(), min_size=8, max_size=8),
    reachable=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_nobody_falls_silent_whatever_fails(apps, failures, reachable):
    """Walk the plan with any pattern of failed and delivered attempts: while the plan runs,
    every step either sends something or escalates; it never ends without either, and an
    SMS or call step (or escalation) always follows an app that failed."""
    plan = policy.resident_plan(DEFAULT_PLAN, "sms", "mobile", None, tuple(apps))
    index, sent = 0, [plan[0]["channel"]]
    for turn in range(len(plan)):
        reach = [None] * (index + 1) + [
            (s["channel"], "addr") if reachable[i % 8] or s["channel"] == "voice" else None
            for i, s in enumerate(plan[index + 1 :], start=index + 1)
        ]
        reach = policy.fallback_reach(plan, index, reach, current_failed=failures[turn % 8])
        decision = _due(plan, index, reach)
        if decision.next == policy.Next.ESCALATE:
            break
        assert decision.next == policy.Next.SEND and decision.step_index > index
        index = decision.step_index
        sent.append(decision.step["channel"])
    # The call at the end of the plan is always reachable here: it is always reached,
    # unless the plan escalated (which is never silence either).
    assert sent[-1] == "voice" or decision.next == policy.Next.ESCALATE


def test_channel_names_are_checked_and_kept_in_order():
    assert check_channels(["LINE", "whatsapp", "sms", "line"]) == ["line", "whatsapp", "sms"]
    assert check_channels("whatsapp, sms") == ["whatsapp", "sms"]
    try:
        check_channels(["line", "fax"])
    except TextError as error:
        assert "unknown channel" in str(error) and "whatsapp" in str(error)
    else:
        raise AssertionError("fax was accepted")


def test_link_codes_are_read_whatever_the_spacing():
    assert normalize_link_code("abcd-efgh") == "ABCDEFGH"
    assert normalize_link_code("1") is None
    assert normalize_link_code("ABCD EFG0") is None  # 0 is not in the alphabet
