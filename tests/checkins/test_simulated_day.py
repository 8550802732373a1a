"""A whole simulated day with a fake clock and the console provider (issue #5's acceptance)."""

from __future__ import annotations

from sqlmodel import select

from i18n.languages import display_name
from service.checkins.models import CheckIn, Schedule, StaffTask
from service.escalations.models import Alert, Escalation
from service.registry.models import MemberKind, Resident
from service.telephony.models import OutboxMessage

LANGUAGES = ["ja", "vi", "id", "fil", "pt_BR", "zh_Hans"]
FINE_WORDS = {
    "ja": "大丈夫です",
    "vi": "Tôi ổn",
    "id": "saya baik",
    "fil": "okay lang ako",
    "pt_BR": "estou bem",
    "zh_Hans": "我很好",
}
HELP_WORDS = {"ja": "大丈夫じゃない", "vi": "không ổn", "id": "tolong", "fil": "2"}


def phone(n: int) -> str:
    return f"090-2000-{n:04d}"


def e164(n: int) -> str:
    return f"+81902000{n:04d}"


def build(world):
    world.site("宅田町第2団地")
    for lang in LANGUAGES:
        world.member(
            f"M-{lang}",
            f"080-3000-{LANGUAGES.index(lang):04d}",
            [lang, "ja"] if lang != "ja" else ["ja"],
        )
    world.member("M-back", "080-3000-0100", ["ja"])
    world.member("S-duty", "080-3000-0200", ["ja"], kind=MemberKind.staff_on_duty)
    plan = {}
    n = 0

    def add(behaviour: str, lang: str, **extra):
        nonlocal n
        key = f"R{n:02d}"
        number = extra.pop("phone", phone(n))
        world.resident(key, number, language=lang, site="宅田町第2団地", **extra)
        world.assign(key, f"M-{lang}", 1)
        world.assign(key, "M-back", 2)
        plan[key] = (behaviour, lang, n)
        n += 1

    for i in range(30):
        add("fine", LANGUAGES[i % 6])
    for lang in ("ja", "vi", "id", "fil"):
        add("help", lang)
    add("talk", "pt_BR", needs_interpreter=True)
    add("talk", "ja")
    add("unclear", "zh_Hans")
    add("unclear", "ja")
    for i in range(8):
        add("silent", LANGUAGES[i % 6])
    add("landline", "ja", phone="(0768) 22-1234")
    add("opted_out", "vi", status="opted_out")
    add("no_consent", "id", consent=False)
    add("away", "ja", status="away", away_until="2026-12-31")
    assert n == 50
    # An interpreter who speaks Portuguese, for the talk request that needs one.
    world.member("I-pt", "080-3000-0300", ["pt_BR", "ja"], kind=MemberKind.interpreter)
    return plan


def states(world) -> dict[str, str]:
    with world.session() as s:
        rows = s.exec(
            select(Resident.external_id, CheckIn.state).join(
                CheckIn, CheckIn.resident_id == Resident.id
            )
        ).all()
    return {key: state for key, state in rows}


def escalation_of(world, key: str) -> Escalation:
    with world.session() as s:
        return s.exec(
            select(Escalation).where(Escalation.resident_id == world.residents[key])
        ).one()


def member_phone(world, key: str) -> str:
    from service.registry.models import Member

    with world.session() as s:
        return s.get(Member, world.members[key]).phone


def test_a_simulated_day(world):
    plan = build(world)
    with world.session() as s:
        s.add(
            Schedule(
                organization_id=world.org_id,
                name="毎朝の見守り",
                time_of_day="10:00",
                next_run_at=world.clock.now().replace(minute=0, hour=1),
            )
        )
        s.commit()

    # 10:00 JST: the schedule starts the round; messages go out.
    world.tick(1)
    first = {key: world.sent_to(e164(n)) for key, (_, _, n) in plan.items()}
    for key, (behaviour, _lang, _n) in plan.items():
        if behaviour in ("fine", "help", "talk", "unclear", "silent"):
            assert len(first[key]) == 1 and first[key][0].channel == "sms", key
            assert first[key][0].status == "sent"
        elif behaviour in ("opted_out", "no_consent", "away"):
            assert first[key] == [], key
    assert "Chào" in first["R01"][0].body or "ổn" in first["R01"][0].body  # Vietnamese
    landline = world.sent_to("+81768221234")
    assert [m.channel for m in landline] == ["call"]

    # 10:05: replies come back, in the residents' own words.
    world.clock.advance(minutes=5)
    for _key, (behaviour, lang, n) in plan.items():
        if behaviour == "fine":
            world.sms(e164(n), FINE_WORDS[lang] if n % 2 else "1")
        elif behaviour == "help":
            world.sms(e164(n), HELP_WORDS[lang])
        elif behaviour == "talk":
            world.sms(e164(n), "3")
        elif behaviour == "unclear":
            world.sms(e164(n), "明日は雨かな")
    # The landline resident answers the call and presses 1.
    call = landline[0]
    base = {"CallSid": call.sid, "To": "+81768221234", "From": "+815000000000"}
    assert (
        world.post(f"/twilio/voice?attempt={call.id}", {**base, "AnsweredBy": "human"}).status_code
        == 200
    )
    assert (
        world.post(f"/twilio/voice/gather?attempt={call.id}", {**base, "Digits": "1"}).status_code
        == 200
    )
    world.tick()

    now = states(world)
    for key, (behaviour, _lang, _n) in plan.items():
        expected = {
            "fine": "ok",
            "help": "needs_help",
            "talk": "wants_talk",
            "unclear": "waiting",
            "silent": "waiting",
            "landline": "ok",
            "opted_out": "visit_list",
            "no_consent": "visit_list",
            "away": "superseded",
        }[behaviour]
        assert now[key] == expected, (key, behaviour, now[key])

    # Help escalates at once, with priority, to the first member in the resident's language.
    for key, (behaviour, _lang, _n) in plan.items():
        if behaviour == "help":
            escalation = escalation_of(world, key)
            assert escalation.priority == 0 and escalation.reason == "needs_help"
    # The talk request that needs an interpreter went to the Portuguese speaker.
    with world.session() as s:
        tasks = s.exec(select(StaffTask).where(StaffTask.kind == "callback")).all()
    assert {t.assigned_member_id for t in tasks} == {world.members["I-pt"], None}

    # 11:05: the reminder; 12:05: the call; 12:35: the plan is exhausted -> escalation.
    world.tick(60)
    for _key, (behaviour, _lang, n) in plan.items():
        if behaviour in ("silent", "unclear"):
            assert [m.body is not None for m in world.sent_to(e164(n))][-1]
            assert len([m for m in world.sent_to(e164(n)) if m.purpose == "checkin"]) == 2
    world.tick(60)
    for key, (behaviour, _lang, n) in plan.items():
        if behaviour in ("silent", "unclear"):
            channels = [m.channel for m in world.sent_to(e164(n)) if m.purpose == "checkin"]
            assert channels == ["sms", "sms", "call"], key
    world.tick(30)
    now = states(world)
    silent = [k for k, (b, _l, _n) in plan.items() if b == "silent"]
    unclear = [k for k, (b, _l, _n) in plan.items() if b == "unclear"]
    for key in silent + unclear:
        assert now[key] == "no_reply", key
    with world.session() as s:
        flagged = s.exec(
            select(CheckIn).join(Resident).where(Resident.external_id.in_(unclear))
        ).all()
    assert all(c.flagged for c in flagged)

    # Every escalation reached the right member, in the member's language.
    with world.session() as s:
        alerts = s.exec(select(Alert).where(Alert.step_index == 0)).all()
        for alert in alerts:
            escalation = s.get(Escalation, alert.escalation_id)
            resident = s.get(Resident, escalation.resident_id)
            lang = plan[resident.external_id][1]
            assert alert.member_id == world.members[f"M-{lang}"]
            message = s.exec(select(OutboxMessage).where(OutboxMessage.alert_id == alert.id)).one()
            member_lang = "ja" if lang == "ja" else lang
            assert message.locale == member_lang
            assert display_name(resident.language, member_lang) in message.body
            assert resident.name in message.body
            assert "1-101" in message.body

    # A decline moves to the next member at once.
    vi_silent = next(k for k in silent if plan[k][1] == "vi")
    esc = escalation_of(world, vi_silent)
    before = len(world.sent_to(member_phone(world, "M-back")))
    world.sms(member_phone(world, "M-vi"), f"2 {esc.case_code}")
    after = world.sent_to(member_phone(world, "M-back"))
    assert len(after) == before + 1 and after[-1].purpose == "alert"
    assert escalation_of(world, vi_silent).step_index == 1

    # The Japanese member acknowledges one case and records "safe" after the visit.
    ja_silent = next(k for k in silent if plan[k][1] == "ja")
    esc = escalation_of(world, ja_silent)
    answer = world.sms(member_phone(world, "M-ja"), f"1 {esc.case_code}")
    assert esc.case_code in answer
    assert escalation_of(world, ja_silent).state == "acknowledged"
    # The resident answers late: the member who holds the case is told; it stays open.
    late_n = plan[ja_silent][2]
    world.sms(e164(late_n), "1")
    notices = [
        m
        for m in world.sent_to(member_phone(world, "M-ja"))
        if m.purpose == "member_notice" and m.body and "返信" in m.body
    ]
    assert notices, "the member holding the case was not told of the late reply"
    assert escalation_of(world, ja_silent).state == "acknowledged"
    world.sms(member_phone(world, "M-ja"), f"{esc.case_code} 1")
    resolved = escalation_of(world, ja_silent)
    assert resolved.state == "resolved" and resolved.outcome == "safe"

    # The Indonesian member acknowledges and then goes silent: reminded, then handed on.
    id_silent = next(k for k in silent if plan[k][1] == "id")
    esc = escalation_of(world, id_silent)
    world.sms(member_phone(world, "M-id"), f"1 {esc.case_code}")
    world.tick(4 * 60 + 1)
    esc = escalation_of(world, id_silent)
    assert esc.state == "acknowledged" and esc.reminded_at is not None
    world.tick(61)
    esc = escalation_of(world, id_silent)
    assert esc.acknowledged_by is None and esc.step_index >= 1
    with world.session() as s:
        handed_to = s.exec(
            select(Alert.member_id).where(
                Alert.escalation_id == esc.id, Alert.step_index == esc.step_index
            )
        ).all()
        reminder = s.exec(
            select(OutboxMessage).where(
                OutboxMessage.member_id == world.members["M-id"],
                OutboxMessage.purpose == "member_notice",
            )
        ).all()
    assert world.members["M-back"] in handed_to
    assert len(reminder) >= 2  # the reminder, then the notice that the case was handed on
    # Nobody answered the rest: after every step, those chains are exhausted, never closed.
    world.tick(60)
    world.tick(60)
    world.tick(60)
    with world.session() as s:
        everything = s.exec(select(Escalation)).all()
    cases = {e.resident_id: e for e in everything}
    assert len(cases) == len(everything)  # one case per resident

    # The final states, exactly: each resident's check-in, and their case and why, if any.
    final = states(world)
    expected = {
        "fine": ("ok", None, None),
        "landline": ("ok", None, None),
        "talk": ("wants_talk", None, None),  # a call-back task for staff, not a case
        "help": ("needs_help", "exhausted", "needs_help"),
        "unclear": ("no_reply", "exhausted", "no_reply"),  # flagged; never an answer
        "silent": ("no_reply", "exhausted", "no_reply"),
        "opted_out": ("visit_list", "exhausted", "visit_list"),
        "no_consent": ("visit_list", "exhausted", "visit_list"),
        "away": ("superseded", None, None),
    }
    for key, (behaviour, _lang, _n) in plan.items():
        case = cases.get(world.residents[key])
        got = (final[key], case.state if case else None, case.reason if case else None)
        if key == ja_silent:  # visited and found safe; the resident's late "1" is on record
            assert got == ("no_reply", "resolved", "no_reply"), key
        else:
            assert got == expected[behaviour], (key, behaviour, got)
    assert sorted(final.values()).count("ok") == 31
