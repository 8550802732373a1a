"""The people screens over HTTP: admins only, the last admin stays, the password policy,
organization scoping. Reset codes: test_password_reset.py. The browser tests are in
test_people_browser.py."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from service.audit.models import AuditEntry
from service.auth.models import Role, User
from tests.checkins.conftest import World
from tests.conftest import make_staff
from tests.web.conftest import FormClient, add_staff

NEW_PASSWORD = "kiriko lantern seaside morning"


def _count(engine, model) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def _audit(engine, action: str, entity_type: str) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(AuditEntry)
                .where(AuditEntry.action == action, AuditEntry.entity_type == entity_type)
                .order_by(AuditEntry.at)
            ).all()
        )


def test_viewers_and_coordinators_cannot_manage_people(forms: FormClient, engine) -> None:
    forms.login(add_staff(engine, Role.viewer))
    assert forms.client.get("/people").status_code == 403
    forms.login(add_staff(engine, Role.coordinator))
    assert forms.client.get("/people").status_code == 403
    target_login = add_staff(engine, Role.viewer, "target@example.jp")
    with Session(engine) as s:
        target = s.exec(select(User).where(User.email == target_login)).one()
    assert forms.post(f"/people/{target.id}/deactivate").status_code == 403
    with Session(engine) as s:
        assert s.get(User, target.id).is_active


def test_another_organizations_users_are_not_found(
    forms: FormClient, world: World, engine, client
) -> None:
    wajima = add_staff(engine, Role.viewer)
    with Session(engine) as s:
        user = s.exec(select(User).where(User.email == wajima)).one()
    other = make_staff(client, engine, org="天草市社会福祉協議会", role=Role.admin)
    forms.login(other.email)
    assert forms.client.get(f"/people/{user.id}").status_code == 404
    assert forms.post(f"/people/{user.id}/deactivate").status_code == 404
    assert wajima not in forms.client.get("/people").text
    with Session(engine) as s:
        assert s.get(User, user.id).is_active


# --- People -----------------------------------------------------------------------------------


def test_the_last_admin_cannot_be_deactivated_or_demoted_from_the_dashboard(
    forms: FormClient, world: World, engine
) -> None:
    admin = add_staff(engine, Role.admin)
    forms.login(admin)
    with Session(engine) as s:
        me = s.exec(select(User).where(User.email == admin)).one()
    refused = forms.post(f"/people/{me.id}/deactivate")
    assert refused.status_code == 422 and "最後の有効な管理者" in refused.text
    demoted = forms.post(
        f"/people/{me.id}", {"full_name": me.full_name, "role": "viewer", "is_active": "1"}
    )
    assert demoted.status_code == 422 and "最後の有効な管理者" in demoted.text
    with Session(engine) as s:
        again = s.get(User, me.id)
        assert (again.role, again.is_active, again.token_version) == ("admin", True, 0)


def test_an_admin_adds_a_user_under_the_password_policy(
    forms: FormClient, world: World, engine
) -> None:
    forms.login(add_staff(engine, Role.admin))
    weak = forms.post(
        "/people",
        {"email": "new@example.jp", "full_name": "新人", "role": "viewer", "password": "password"},
    )
    assert weak.status_code == 422 and 'data-field="password"' in weak.text
    assert _count(engine, User) == 1
    made = forms.post(
        "/people",
        {
            "email": "new@example.jp",
            "full_name": "新人",
            "role": "coordinator",
            "password": NEW_PASSWORD,
        },
    )
    assert made.status_code == 303
    with Session(engine) as s:
        assert (
            s.exec(select(User.role).where(User.email == "new@example.jp")).one() == "coordinator"
        )
    assert _audit(engine, "create", "user")
