"""The dashboard over HTTP: login and session, CSRF, roles, every page, every action.

These run without a browser (the browser tests are in test_browser.py); they post the same
forms the pages hold, with the page's CSRF token.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.models import Role
from service.checkins.models import CheckIn, Round, Schedule, StaffTask
from service.escalations.models import Escalation
from service.registry.models import Resident
from service.telephony.models import InboundMessage, OutboxMessage
from tests.registry.test_csv_import import BAD_ROWS, GOOD_ROWS, cp932_file
from tests.web.conftest import SITE_A, SITE_B, FormClient, Morning, add_staff

# --- Login, session cookie, CSRF and roles ----------------------------------------------------


def test_pages_redirect_to_login_without_a_session(client) -> None:
    response = client.get("/residents/" + str(uuid.uuid4()), follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fresidents%2F")
    assert client.get("/board/live").status_code == 401


def test_login_sets_a_signed_httponly_samesite_cookie(forms: FormClient, engine) -> None:
    email = add_staff(engine, Role.coordinator)
    response = forms.login(email)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "mimamori_session=" in cookie
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    board = forms.client.get("/")
    assert board.status_code == 200 and "職員 coordinator" in board.text
    # A tampered cookie is not a session.
    forms.client.cookies.set("mimamori_session", "x" + cookie.split("=", 1)[1].split(";")[0])
    assert forms.client.get("/", follow_redirects=False).status_code == 303


def test_wrong_password_is_refused_without_saying_which_part(forms: FormClient, engine) -> None:
    email = add_staff(engine, Role.coordinator)
    response = forms.login(email, password="not the password")
    assert response.status_code == 401
    assert "ログインIDまたはパスワードが違います" in response.text
    assert forms.client.get("/", follow_redirects=False).status_code == 303


def test_login_never_redirects_to_another_site(forms: FormClient, engine) -> None:
    email = add_staff(engine, Role.coordinator)
    token = forms.csrf("/login")
    response = forms.client.post(
        "/login",
        data={
            "csrf_token": token,
            "email": email,
            "password": "correct horse battery staple",
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_a_post_without_the_csrf_token_is_rejected(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    path = f"/residents/{morning.help_resident}/note"
    missing = forms.client.post(path, data={"text": "偽のメモ"}, follow_redirects=False)
    wrong = forms.client.post(
        path, data={"text": "偽のメモ", "csrf_token": "x" * 43}, follow_redirects=False
    )
    assert missing.status_code == 403 and wrong.status_code == 403
    assert "期限切れ" in wrong.text
    with morning.world.session() as s:
        notes = s.exec(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "note")
        ).one()
    assert notes == 0
    # The same form with the page's token goes through.
    assert forms.post(path, {"text": "本物のメモ"}).status_code == 303


def test_a_logged_out_form_post_is_rejected_too(client) -> None:
    assert client.post("/logout", data={}).status_code == 403


def test_a_viewer_sees_no_actions_and_cannot_post(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.viewer))
    resident = forms.client.get(f"/residents/{morning.help_resident}")
    assert resident.status_code == 200
    assert "/note" not in resident.text and "/moved-out" not in resident.text
    with morning.world.session() as s:
        case = s.exec(select(Escalation)).first()
    page = forms.client.get(f"/cases/{case.id}")
    assert page.status_code == 200 and "/resolve" not in page.text
    assert "/rounds/confirm" not in forms.client.get("/rounds").text
    denied = forms.post(f"/cases/{case.id}/resolve", {"outcome": "safe"})
    assert denied.status_code == 403
    assert forms.post(f"/residents/{morning.help_resident}/note", {"text": "x"}).status_code == 403
    with morning.world.session() as s:
        assert s.get(Escalation, case.id).state != "resolved"


def test_another_organizations_records_are_not_found(
    forms: FormClient, morning: Morning, client
) -> None:
    from tests.conftest import make_staff

    other = make_staff(client, morning.world.engine, org="天草市社会福祉協議会", role=Role.admin)
    forms.login(other.email)
    assert forms.client.get(f"/residents/{morning.help_resident}").status_code == 404
    assert forms.client.get(f"/rounds/{morning.round_id}").status_code == 404
    board = forms.client.get("/")
    assert "能登 太郎3" not in board.text


# --- Language ---------------------------------------------------------------------------------


def test_japanese_by_default_and_english_on_request(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    page = forms.client.get("/")
    assert '<html lang="ja">' in page.text and "対応が必要" in page.text
    assert forms.post("/language", {"language": "en", "next": "/"}).status_code == 303
    page = forms.client.get("/")
    assert '<html lang="en">' in page.text and "Needs attention" in page.text
    assert "対応が必要" not in page.text


# --- The board --------------------------------------------------------------------------------


def _bucket(html: str, bucket: str) -> int:
    found = re.search(rf'data-bucket="{bucket}"><dt>[^<]*</dt><dd>([\d,]+)</dd>', html)
    assert found, bucket
    return int(found.group(1).replace(",", ""))


def test_board_counts_a_round_by_state_and_site(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.viewer))
    html = forms.client.get("/").text
    assert _bucket(html, "total") == 10
    for bucket, count in {
        "ok": 2,
        "needs_help": 1,
        "wants_talk": 1,
        "unclear": 1,
        "waiting": 5,
        "escalated": 1,
        "resolved": 0,
    }.items():
        assert _bucket(html, bucket) == count, bucket
    rows = dict(re.findall(r'<tr data-site="([^"]+)">(.*?)</tr>', html, re.S))
    assert set(rows) == {SITE_A, SITE_B}
    assert 'data-bucket="waiting">4<' in rows[SITE_B]
    assert 'data-bucket="ok">2<' in rows[SITE_A]
    live = forms.client.get("/board/live").text
    assert "<html" not in live and _bucket(live, "ok") == 2
    assert "<svg" in html and "polyline" in html


def test_needs_attention_is_sorted_help_then_exhausted_then_waiting_then_unreachable(
    forms: FormClient, morning: Morning, engine
) -> None:
    from service.escalations.models import EscalationReason, EscalationState

    world = morning.world
    with world.session() as s:
        residents = {r.external_id: r for r in s.exec(select(Resident)).all()}
        now = world.clock.now()

        def case(key: str, reason: EscalationReason, state: EscalationState, minutes: int) -> None:
            s.add(
                Escalation(
                    organization_id=world.org_id,
                    resident_id=residents[key].id,
                    reason=reason,
                    priority=0 if reason == EscalationReason.needs_help else 2,
                    state=state,
                    case_code=f"C{key}",
                    created_at=now.replace(minute=minutes),
                )
            )

        case("R07", EscalationReason.unreachable, EscalationState.alerting, 1)
        case("R08", EscalationReason.no_reply, EscalationState.acknowledged, 2)
        case("R09", EscalationReason.no_reply, EscalationState.alerting, 3)
        case("R10", EscalationReason.no_reply, EscalationState.exhausted, 4)
        s.commit()
    forms.login(add_staff(engine, Role.viewer))
    html = forms.client.get("/").text
    order = re.findall(r'data-case="([^"]+)"', html)
    help_code = order[0]
    assert order[1:] == ["CR10", "CR09", "CR07", "CR08"]
    with world.session() as s:
        assert (
            s.exec(select(Escalation).where(Escalation.case_code == help_code)).one().reason
            == "needs_help"
        )


# --- Every page, in both languages --------------------------------------------------------------


def _pages(morning: Morning) -> list[str]:
    with morning.world.session() as s:
        case = s.exec(select(Escalation)).first()
    return [
        "/",
        f"/?round={morning.round_id}",
        "/board/live",
        f"/rounds/{morning.round_id}",
        f"/rounds/{morning.round_id}?state=waiting&page=1",
        "/rounds",
        "/schedules/new",
        f"/residents/{morning.help_resident}",
        "/cases",
        "/cases?resolved=1",
        f"/cases/{case.id}",
        "/inbox",
        "/registry/residents",
        "/registry/residents?q=能登&page=1",
        "/registry/members",
        "/registry/assignments",
        "/registry/import",
        "/login",
    ]


def test_every_page_renders_in_both_languages(forms: FormClient, morning: Morning, engine) -> None:
    forms.login(add_staff(engine, Role.admin))
    for language in ("ja", "en"):
        forms.post("/language", {"language": language, "next": "/"})
        for path in _pages(morning):
            response = forms.client.get(path)
            assert response.status_code == 200, (language, path, response.text[:500])
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in response.text


# --- Resident actions -------------------------------------------------------------------------


def _audit(morning: Morning, action: str) -> list[AuditEntry]:
    with morning.world.session() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def test_resident_page_shows_the_timeline_and_its_read_is_audited(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.viewer))
    html = forms.client.get(f"/residents/{morning.help_resident}").text
    assert "能登 太郎3" in html
    assert "委員 M1" in html and "委員 M2" in html
    assert 'data-kind="sms.out.checkin"' in html and 'data-kind="sms.in"' in html
    assert 'data-kind="escalation.opened"' in html
    reads = [e for e in _audit(morning, "read") if e.entity_id == str(morning.help_resident)]
    assert reads and reads[0].actor.startswith("職員 viewer")


def test_resident_actions_change_the_record_and_are_audited_with_the_staff_name(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    rid = morning.silent_resident
    assert forms.post(f"/residents/{rid}/note", {"text": "玄関に灯りあり"}).status_code == 303
    page = forms.client.get(f"/residents/{rid}").text
    assert "メモを追加しました" in page and "玄関に灯りあり" in page
    forms.post(f"/residents/{rid}/language", {"language": "vi"})
    forms.post(f"/residents/{rid}/away", {"away_until": "2026-12-24"})
    with morning.world.session() as s:
        resident = s.get(Resident, rid)
        assert (resident.language, resident.status, str(resident.away_until)) == (
            "vi",
            "away",
            "2026-12-24",
        )
    forms.post(f"/residents/{rid}/moved-out")
    with morning.world.session() as s:
        assert s.get(Resident, rid).status == "moved_out"
    forms.post(f"/residents/{rid}/active")
    with morning.world.session() as s:
        assert s.get(Resident, rid).status == "active"
    notes = _audit(morning, "note")
    updates = [e for e in _audit(morning, "update") if e.entity_id == str(rid)]
    assert notes[0].actor.startswith("職員 coordinator")
    assert {tuple(e.fields) for e in updates} >= {
        ("language",),
        ("away_until", "status"),
        ("status",),
    }


def test_a_bad_away_date_is_refused_with_a_notice(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    forms.post(f"/residents/{morning.silent_resident}/away", {"away_until": "いつか"})
    page = forms.client.get(f"/residents/{morning.silent_resident}").text
    assert "戻る日を入力してください" in page
    with morning.world.session() as s:
        assert s.get(Resident, morning.silent_resident).status == "active"


def test_one_off_check_in_starts_a_round_for_that_resident(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    forms.post(f"/residents/{morning.silent_resident}/checkin")
    with morning.world.session() as s:
        round_ = s.exec(select(Round).where(Round.kind == "one_off")).one()
        checkins = s.exec(select(CheckIn).where(CheckIn.round_id == round_.id)).all()
    assert [c.resident_id for c in checkins] == [morning.silent_resident]
    assert round_.started_by.startswith("職員 coordinator")


# --- Cases ------------------------------------------------------------------------------------


def test_recording_an_outcome_closes_the_case_and_moves_the_counts(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    with morning.world.session() as s:
        case = s.exec(
            select(Escalation).where(Escalation.resident_id == morning.help_resident)
        ).one()
    member = morning.world.members["M1"]
    assert (
        forms.post(
            f"/cases/{case.id}/acknowledge", {"member_id": str(member), "note": "電話で確認"}
        ).status_code
        == 303
    )
    assert _bucket(forms.client.get("/").text, "acknowledged") == 1
    forms.post(
        f"/cases/{case.id}/resolve",
        {"outcome": "safe", "member_id": str(member), "note": "訪問済み"},
    )
    html = forms.client.get("/").text
    assert (
        _bucket(html, "escalated"),
        _bucket(html, "acknowledged"),
        _bucket(html, "resolved"),
    ) == (0, 0, 1)
    with morning.world.session() as s:
        case = s.get(Escalation, case.id)
        assert (case.state, case.outcome, case.outcome_note) == ("resolved", "safe", "訪問済み")
        assert case.resolved_by.startswith("職員 coordinator")
    assert [e.action for e in _audit(morning, "resolve")] == ["resolve"]


def test_reassigning_alerts_the_chosen_member(forms: FormClient, morning: Morning, engine) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    with morning.world.session() as s:
        case = s.exec(select(Escalation)).first()
    before = len(morning.world.sent_to("+818030000002"))
    forms.post(f"/cases/{case.id}/reassign", {"member_id": str(morning.world.members["M2"])})
    with morning.world.session() as s:
        queued = s.exec(
            select(OutboxMessage).where(OutboxMessage.to_phone == "+818030000002")
        ).all()
    assert len(queued) == before + 1 and queued[-1].purpose == "alert"
    assert _audit(morning, "reassign")[0].actor.startswith("職員 coordinator")


def test_resolving_without_an_outcome_is_refused(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    with morning.world.session() as s:
        case = s.exec(select(Escalation)).first()
    forms.post(f"/cases/{case.id}/resolve", {"outcome": ""})
    assert "訪問の結果を選んでください" in forms.client.get(f"/cases/{case.id}").text


# --- Rounds and schedules ---------------------------------------------------------------------


def test_broadcast_shows_a_confirmation_before_anything_is_sent(
    forms: FormClient, morning: Morning, engine
) -> None:
    world = morning.world
    forms.login(add_staff(engine, Role.coordinator))
    with world.session() as s:
        rounds_before = s.exec(select(func.count()).select_from(Round)).one()
    site_a = str(world.sites[SITE_A])
    page = forms.post("/rounds/confirm", {"site_ids": [site_a], "cause": "震度5弱"})
    assert page.status_code == 200
    html = page.text
    assert re.search(r'data-preview="contacted"><strong>6</strong>', html)
    assert 'data-preview="sms">6<' in html and 'data-preview="voice">0<' in html
    assert 'data-preview="languages">2<' in html  # Japanese and Vietnamese
    segments = int(re.search(r'data-preview="segments">(\d+)<', html).group(1))
    assert segments >= 6
    assert "夜間ではありません" in html
    with world.session() as s:
        assert s.exec(select(func.count()).select_from(Round)).one() == rounds_before
    started = forms.post("/rounds/start", {"site_ids": [site_a], "cause": "震度5弱"})
    assert started.status_code == 303 and started.headers["location"].startswith("/?round=")
    with world.session() as s:
        newest = s.exec(select(Round).where(Round.cause == "震度5弱")).one()
        assert (
            s.exec(
                select(func.count()).select_from(CheckIn).where(CheckIn.round_id == newest.id)
            ).one()
            == 6
        )


def test_confirmation_says_when_quiet_hours_hold_or_are_overridden(
    forms: FormClient, morning: Morning, engine
) -> None:
    morning.world.clock.advance(hours=12)  # 22:00 in Tokyo
    forms.login(add_staff(engine, Role.coordinator))
    site_b = str(morning.world.sites[SITE_B])
    held = forms.post("/rounds/confirm", {"site_ids": [site_b]}).text
    assert "今は夜間です" in held
    overridden = forms.post(
        "/rounds/confirm", {"site_ids": [site_b], "override_quiet_hours": "1"}
    ).text
    assert "夜間の制限を無視します。メッセージは今すぐ" in overridden
    assert 'name="override_quiet_hours" value="1"' in overridden


def test_schedules_can_be_created_changed_and_deleted(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    site_a = str(morning.world.sites[SITE_A])
    created = forms.post(
        "/schedules",
        {
            "name": "毎朝",
            "time_of_day": "10:00",
            "weekdays": ["0", "2", "4"],
            "target_kind": "sites",
            "target_site_ids": [site_a],
            "quiet_start": "21:00",
            "quiet_end": "08:00",
            "active": "1",
        },
    )
    assert created.status_code == 303
    with morning.world.session() as s:
        schedule = s.exec(select(Schedule)).one()
    assert schedule.weekdays == [0, 2, 4] and schedule.target_site_ids == [site_a]
    assert "毎朝" in forms.client.get("/rounds").text
    bad = forms.post(
        f"/schedules/{schedule.id}", {"name": "毎朝", "time_of_day": "25:00", "weekdays": ["0"]}
    )
    assert bad.status_code == 303
    assert "保存できませんでした" in forms.client.get(f"/schedules/{schedule.id}").text
    forms.post(
        f"/schedules/{schedule.id}",
        {"name": "毎夕", "time_of_day": "17:30", "weekdays": ["1"], "target_kind": "all"},
    )
    with morning.world.session() as s:
        schedule = s.get(Schedule, schedule.id)
        assert (schedule.name, schedule.time_of_day, schedule.weekdays, schedule.active) == (
            "毎夕",
            "17:30",
            [1],
            False,
        )
    forms.post(f"/schedules/{schedule.id}/delete")
    with morning.world.session() as s:
        assert s.exec(select(func.count()).select_from(Schedule)).one() == 0


# --- Registry, import and export --------------------------------------------------------------


def test_registry_search_finds_residents_by_name_and_phone(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.viewer))
    by_name = forms.client.get("/registry/residents", params={"q": "太郎10"}).text
    assert "能登 太郎10" in by_name and "能登 太郎3<" not in by_name
    by_phone = forms.client.get("/registry/residents", params={"q": "090-2000-0004"}).text
    assert "能登 太郎4" in by_phone
    assert "委員 M1" in forms.client.get("/registry/members").text
    assert "能登 太郎1" in forms.client.get("/registry/assignments").text


def test_import_preview_lists_bad_rows_and_applies_only_when_asked(
    forms: FormClient, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    data = cp932_file(GOOD_ROWS + BAD_ROWS)
    token = forms.csrf("/registry/import")
    preview = forms.client.post(
        "/registry/import",
        data={"csrf_token": token, "kind": "residents"},
        files={"file": ("名簿.csv", data, "text/csv")},
    )
    assert preview.status_code == 200
    assert re.findall(r'<tr data-line="(\d+)">', preview.text) == ["7", "8", "9"]
    assert "クリンゴン語" in preview.text and "cp932" in preview.text
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Resident)).one() == 0
    payload = re.search(r'name="payload" value="([^"]+)"', preview.text).group(1)
    rejects = forms.post("/registry/import/rejects", {"kind": "residents", "payload": payload})
    assert rejects.status_code == 200 and "attachment" in rejects.headers["content-disposition"]
    rows = rejects.content.decode("utf-8-sig").splitlines()
    assert len(rows) == 4 and rows[1].startswith("W-006")
    applied = forms.post(
        "/registry/import/apply", {"kind": "residents", "payload": payload, "mode": "valid_rows"}
    )
    assert applied.status_code == 200 and "取り込みました" in applied.text
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Resident)).one() == 5


def test_import_of_a_clean_file_applies_it(forms: FormClient, engine) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    token = forms.csrf("/registry/import")
    preview = forms.client.post(
        "/registry/import",
        data={"csrf_token": token, "kind": "residents"},
        files={"file": ("ok.csv", cp932_file(GOOD_ROWS), "text/csv")},
    )
    assert "data-line" not in preview.text
    payload = re.search(r'name="payload" value="([^"]+)"', preview.text).group(1)
    forms.post("/registry/import/apply", {"kind": "residents", "payload": payload})
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Resident)).one() == 5


def test_unreadable_upload_is_reported(forms: FormClient, engine) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    token = forms.csrf("/registry/import")
    response = forms.client.post(
        "/registry/import",
        data={"csrf_token": token, "kind": "residents"},
        files={"file": ("bad.csv", b"\xff\xfe\x00\x81\xff" * 10, "text/csv")},
    )
    assert response.status_code == 200 and "ファイルを読めません" in response.text


def test_export_writes_cp932_for_excel_or_utf8(forms: FormClient, morning: Morning, engine) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    cp932 = forms.post("/registry/export", {"encoding": "cp932"})
    assert cp932.status_code == 200 and "shift_jis" in cp932.headers["content-type"]
    assert "能登 太郎1" in cp932.content.decode("cp932")
    utf8 = forms.post("/registry/export", {"encoding": "utf-8-sig"})
    assert utf8.content.startswith(b"\xef\xbb\xbf")
    assert _audit(morning, "export")


# --- The inbox --------------------------------------------------------------------------------


def test_inbox_links_answers_and_closes_an_sms_from_an_unknown_number(
    forms: FormClient, morning: Morning, engine
) -> None:
    world = morning.world
    world.sms("+819099998888", "母の様子を見てください")
    forms.login(add_staff(engine, Role.coordinator))
    html = forms.client.get("/inbox").text
    assert "母の様子を見てください" in html and "+819099998888" in html
    with world.session() as s:
        task = s.exec(select(StaffTask).where(StaffTask.kind == "unknown_sender")).one()
    forms.post(f"/inbox/{task.id}/link", {"resident": "R07"})
    with world.session() as s:
        message = s.get(InboundMessage, task.inbound_id)
        assert message.resident_id == world.residents["R07"]
    assert "母の様子を見てください" in forms.client.get(f"/residents/{world.residents['R07']}").text
    forms.post(f"/inbox/{task.id}/answer", {"body": "確認します。"})
    with world.session() as s:
        answer = s.exec(select(OutboxMessage).where(OutboxMessage.body == "確認します。")).one()
        assert answer.to_phone == "+819099998888"
    forms.post(f"/inbox/{task.id}/close", {"note": "家族に連絡済み"})
    with world.session() as s:
        task = s.get(StaffTask, task.id)
        assert task.closed_at is not None and task.closed_by.startswith("職員 coordinator")
        assert s.get(InboundMessage, task.inbound_id).needs_staff is False
    assert "母の様子" not in forms.client.get("/inbox").text


def test_inbox_shows_talk_requests_and_unclear_replies(
    forms: FormClient, morning: Morning, engine
) -> None:
    forms.login(add_staff(engine, Role.viewer))
    html = forms.client.get("/inbox").text
    assert 'data-task="callback"' in html and 'data-task="unclear"' in html
    assert "/inbox/" not in html.split("<main", 1)[1]  # a viewer gets no action forms


def test_linking_needs_exactly_one_match(forms: FormClient, morning: Morning, engine) -> None:
    morning.world.sms("+819011112222", "こんにちは")
    forms.login(add_staff(engine, Role.coordinator))
    with morning.world.session() as s:
        task = s.exec(select(StaffTask).where(StaffTask.kind == "unknown_sender")).one()
    forms.post(f"/inbox/{task.id}/link", {"resident": "能登"})
    assert "該当する住民が10人います" in forms.client.get("/inbox").text
    with morning.world.session() as s:
        assert s.get(InboundMessage, task.inbound_id).resident_id is None
