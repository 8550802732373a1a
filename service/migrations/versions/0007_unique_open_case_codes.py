"""No two open cases of an organization share a case code

A member with several open alerts answers with the case's code ("A7 1"). Codes were drawn
at random among those not in use, but two transactions opening cases at once could draw the
same one. A partial unique index now refuses the second. Open cases that already share a
code keep it on the oldest; the others get a fresh code, recorded in the audit log.

Revision ID: 0007
Revises: 0006
"""

import random
import string
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_STATES = ("alerting", "acknowledged", "exhausted")
OPEN_CASE = sa.text("state IN ('alerting', 'acknowledged', 'exhausted')")

escalation = sa.table(
    "escalation",
    sa.column("id", sa.Uuid),
    sa.column("organization_id", sa.Uuid),
    sa.column("case_code", sa.String),
    sa.column("state", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
audit_log = sa.table(
    "audit_log",
    sa.column("id", sa.Uuid),
    sa.column("organization_id", sa.Uuid),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor_user_id", sa.Uuid),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("entity_type", sa.String),
    sa.column("entity_id", sa.String),
    sa.column("fields", sa.JSON),
    sa.column("detail", sa.JSON),
)


def _fresh_code(used: set[str]) -> str:
    # The same form as service.escalations.service._new_case_code.
    for _ in range(1000):
        code = f"{random.choice(string.ascii_uppercase)}{random.randint(1, 99)}"
        if code not in used:
            return code
    return uuid.uuid4().hex[:6].upper()


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(escalation.c.id, escalation.c.organization_id, escalation.c.case_code)
        .where(escalation.c.state.in_(OPEN_STATES))
        .order_by(escalation.c.created_at, escalation.c.id)
    ).all()
    used: dict[uuid.UUID, set[str]] = {}
    for _id, organization_id, code in rows:
        used.setdefault(organization_id, set()).add(code)
    kept: set[tuple[uuid.UUID, str]] = set()
    now = datetime.now(UTC)
    for escalation_id, organization_id, code in rows:
        if (organization_id, code) not in kept:
            kept.add((organization_id, code))
            continue
        fresh = _fresh_code(used[organization_id])
        used[organization_id].add(fresh)
        bind.execute(
            escalation.update()
            .where(escalation.c.id == escalation_id)
            .values(case_code=fresh, updated_at=now)
        )
        bind.execute(
            audit_log.insert().values(
                id=uuid.uuid4(),
                organization_id=organization_id,
                at=now,
                actor_user_id=None,
                actor="migration",
                action="update",
                entity_type="escalation",
                entity_id=str(escalation_id),
                fields=["case_code"],
                detail={"from": code, "to": fresh, "source": "migration 0007: shared code"},
            )
        )
    op.create_index(
        "uq_escalation_open_case_code",
        "escalation",
        ["organization_id", "case_code"],
        unique=True,
        postgresql_where=OPEN_CASE,
        sqlite_where=OPEN_CASE,
    )


def downgrade() -> None:
    op.drop_index("uq_escalation_open_case_code", table_name="escalation")
