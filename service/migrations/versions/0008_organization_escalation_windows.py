"""Each organization sets its acknowledgement window and its time to report a visit

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organization") as batch:
        batch.add_column(
            sa.Column("ack_minutes", sa.Integer(), server_default="30", nullable=False)
        )
        batch.add_column(
            sa.Column("outcome_hours", sa.Integer(), server_default="4", nullable=False)
        )


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite has it since 3.35): rebuilding the table,
    # as a batch would on SQLite, fails its foreign keys once sites and residents exist.
    with op.batch_alter_table("organization", recreate="never") as batch:
        batch.drop_column("outcome_hours")
        batch.drop_column("ack_minutes")
