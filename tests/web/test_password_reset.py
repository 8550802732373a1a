"""One-time password reset codes: admins only, scoped to the organization, stored nowhere,
single use, expiring after 24 hours, voided by a newer one, audited; the new password is
under the policy. The browser test is in test_password_reset_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.audit.service import Actor
from service.auth.models import Role, User
from service.auth.reset import ResetRefused, code_fits, issue_reset, use_reset
from service.config import get_settings
from tests.checkins.conftest import World
from tests.conftest import TEST_PASSWORD, make_staff
from tests.web.conftest import FormClient, add_staff

NEW_PASSWORD = "kiriko lantern seaside morning"


def _audit(engine, action: str, entity_type: str) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(AuditEntry)
                .where(AuditEntry.action == action, AuditEntry.entity_type == entity_type)
                .order_by(AuditEntry.at)
            ).all()
        )


def test_only_an_admin_of_the_same_organization_issues_a_code(
    forms: FormClient, world: World, engine, client
) -> None:
    target_login = add_staff(engine, Role.viewer, "target@example.jp")
    with Session(engine) as s:
        target = s.exec(select(User).where(User.email == target_login)).one()
    forms.login(add_staff(engine, Role.coordinator))
    assert forms.post(f"/people/{target.id}/reset").status_code == 403
    other = make_staff(client, engine, org="天草市社会福祉協議会", role=Role.admin)
    forms.login(other.email)
    assert forms.post(f"/people/{target.id}/reset").status_code == 404
    assert not _audit(engine, "issue_reset", "user")
    with Session(engine) as s:
        assert s.get(User, target.id).token_version == 0


def test_a_reset_code_works_once_and_is_stored_nowhere(
    forms: FormClient, world: World, engine, client
) -> None:
    forms.login(add_staff(engine, Role.admin))
    login = add_staff(engine, Role.coordinator, "forgetful@example.jp")
    with Session(engine) as s:
        user = s.exec(select(User).where(User.email == login)).one()
    issued = forms.post(f"/people/{user.id}/reset")
    assert issued.status_code == 200
    code = re.search(r'id="reset-code">([^<]+)<', issued.text).group(1)
    with Session(engine) as s:
        assert s.get(User, user.id).token_version == 1  # the old sessions ended
    assert code not in str([(e.fields, e.detail) for e in _audit(engine, "issue_reset", "user")])
    assert (
        code not in issued.headers.get("location", "")
        and "no-store" in issued.headers["cache-control"]
    )
    # A weak password is refused and the code stays usable.
    other = FormClient(TestClient(client.app))  # the user's own browser, not the admin's
    weak = other.post("/password-reset", {"email": login, "code": code, "new_password": "short"})
    assert weak.status_code == 422
    used = other.post(
        "/password-reset", {"email": login, "code": code.lower(), "new_password": NEW_PASSWORD}
    )
    assert used.status_code == 303, used.text
    assert other.login(login, NEW_PASSWORD).status_code == 303
    assert other.login(login, TEST_PASSWORD).status_code == 401
    twice = other.post(
        "/password-reset", {"email": login, "code": code, "new_password": NEW_PASSWORD + "x"}
    )
    assert twice.status_code == 401 and "使用済み" in twice.text
    assert [e.fields for e in _audit(engine, "use_reset", "user")] == [["password"]]
    # A newer code voids the older ones.
    second = forms.post(f"/people/{user.id}/reset")
    code2 = re.search(r'id="reset-code">([^<]+)<', second.text).group(1)
    forms.post(f"/people/{user.id}/reset")
    stale = other.post(
        "/password-reset", {"email": login, "code": code2, "new_password": NEW_PASSWORD}
    )
    assert stale.status_code == 401


def test_a_code_expires_after_24_hours(world: World, engine) -> None:
    login = add_staff(engine, Role.viewer, "forgetful@example.jp")
    settings = get_settings()
    issued_at = datetime(2026, 12, 7, 9, 3, tzinfo=UTC)
    with Session(engine) as s:
        user = s.exec(select(User).where(User.email == login)).one()
        code, expires = issue_reset(
            session=s,
            settings=settings,
            organization_id=user.organization_id,
            user_id=user.id,
            actor=Actor(label="test"),
            now=issued_at,
        )
        s.commit()
        s.refresh(user)
        assert expires == datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
        assert code_fits(settings, user, code, expires - timedelta(seconds=1))
        assert not code_fits(settings, user, code, expires)
        assert not code_fits(settings, user, code, issued_at + timedelta(days=3))
        assert not code_fits(
            settings, user, code[:-1] + ("2" if code[-1] != "2" else "3"), issued_at
        )
    with Session(engine) as s, pytest.raises(ResetRefused):
        use_reset(
            session=s,
            settings=settings,
            login=login,
            code=code,
            password=NEW_PASSWORD,
            address="192.0.2.1",
            now=expires + timedelta(minutes=1),
        )
    with Session(engine) as s:
        assert s.get(User, user.id).token_version == 1  # unchanged since issuing
