"""Residents' ordered channels: WhatsApp, LINE, SMS, voice (issue 21)

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN: nothing is rebuilt (the outbox is large).
    with op.batch_alter_table("resident", recreate="never") as batch:
        batch.add_column(
            sa.Column("channels", sa.JSON(), nullable=True, server_default=sa.text("'[]'"))
        )
        batch.add_column(
            sa.Column("line_user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    op.create_index("ix_resident_line_user_id", "resident", ["line_user_id"], unique=False)
    with op.batch_alter_table("outbox", recreate="never") as batch:
        batch.add_column(
            sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    op.create_table(
        "line_link_code",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("resident_id", sa.Uuid(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.ForeignKeyConstraint(["resident_id"], ["resident.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_line_link_code_code", "line_link_code", ["code"], unique=True)
    op.create_index(
        "ix_line_link_code_resident_id", "line_link_code", ["resident_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_line_link_code_resident_id", table_name="line_link_code")
    op.drop_index("ix_line_link_code_code", table_name="line_link_code")
    op.drop_table("line_link_code")
    with op.batch_alter_table("outbox", recreate="never") as batch:
        batch.drop_column("address")
    op.drop_index("ix_resident_line_user_id", table_name="resident")
    with op.batch_alter_table("resident", recreate="never") as batch:
        batch.drop_column("line_user_id")
        batch.drop_column("channels")
