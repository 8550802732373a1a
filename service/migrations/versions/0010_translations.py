"""Stored machine translations of residents' free-text replies

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "translation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("inbound_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("outbox_id", sa.Uuid(), nullable=True),
        sa.Column("source_text", sa.Text(), nullable=True),
        sa.Column("detected_language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("target_language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("translated_text", sa.Text(), nullable=True),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("translated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_message.id"],
            name=op.f("fk_translation_inbound_id_inbound_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_translation_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_translation_outbox_id_outbox"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["staff_task.id"],
            name=op.f("fk_translation_task_id_staff_task"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_translation")),
    )
    with op.batch_alter_table("translation", schema=None) as batch_op:
        batch_op.create_index(
            "uq_translation_inbound",
            ["inbound_id"],
            unique=True,
            postgresql_where=sa.text("inbound_id IS NOT NULL"),
            sqlite_where=sa.text("inbound_id IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_translation_due",
            ["next_try_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_translation_outbox",
            ["outbox_id"],
            unique=False,
            postgresql_where=sa.text("outbox_id IS NOT NULL"),
            sqlite_where=sa.text("outbox_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("translation", schema=None) as batch_op:
        batch_op.drop_index("ix_translation_outbox")
        batch_op.drop_index("ix_translation_due")
        batch_op.drop_index("uq_translation_inbound")
    op.drop_table("translation")
