"""Outbox dispatch claims just in time and remembers permanent failures

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reconciliation", sa.String(length=16), nullable=True))
    op.create_index(
        "ix_outbox_reconciliation",
        "outbox",
        ["reconciliation"],
        unique=False,
        postgresql_where=sa.text("reconciliation IS NOT NULL"),
        sqlite_where=sa.text("reconciliation IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_due_retry",
        "outbox",
        ["next_try_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND tries > 0"),
        sqlite_where=sa.text("status = 'pending' AND tries > 0"),
    )
    dead_sms = "channel = 'sms' AND status = 'failed' AND last_error_code IN (21211, 21610, 21614)"
    op.create_index(
        "ix_outbox_dead_sms",
        "outbox",
        ["to_phone"],
        unique=False,
        postgresql_where=sa.text(dead_sms),
        sqlite_where=sa.text(dead_sms),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_dead_sms", table_name="outbox")
    op.drop_index("ix_outbox_due_retry", table_name="outbox")
    op.drop_index("ix_outbox_reconciliation", table_name="outbox")
    # A plain ALTER TABLE ... DROP COLUMN (SQLite has it since 3.35): rebuilding the table,
    # as a batch would on SQLite, fails the foreign keys once rows exist.
    with op.batch_alter_table("outbox", recreate="never") as batch:
        batch.drop_column("reconciliation")
        batch.drop_column("uncertain_since")
        batch.drop_column("lease_until")
