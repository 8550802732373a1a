"""Announcements to sites in each resident's language (issue 21)

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "announcement",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("site_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("written_by", _string(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_by", _string(200), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("override_quiet_hours", sa.Boolean(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_announcement_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcement")),
    )
    op.create_index(
        "ix_announcement_org_created", "announcement", ["organization_id", "created_at"]
    )
    op.create_table(
        "announcement_text",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("announcement_id", sa.Uuid(), nullable=False),
        sa.Column("language", _string(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("fallback", _string(16), nullable=True),
        sa.Column("provider", _string(16), nullable=True),
        sa.Column("error", _string(500), nullable=True),
        sa.Column("confirmed_by", _string(200), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["announcement_id"],
            ["announcement.id"],
            name=op.f("fk_announcement_text_announcement_id_announcement"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcement_text")),
        sa.UniqueConstraint(
            "announcement_id",
            "language",
            name=op.f("uq_announcement_text_announcement_id_language"),
        ),
    )
    op.create_table(
        "announcement_delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("announcement_id", sa.Uuid(), nullable=False),
        sa.Column("resident_id", sa.Uuid(), nullable=False),
        sa.Column("outbox_id", sa.Uuid(), nullable=False),
        sa.Column("language", _string(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["announcement_id"],
            ["announcement.id"],
            name=op.f("fk_announcement_delivery_announcement_id_announcement"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_announcement_delivery_outbox_id_outbox"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_announcement_delivery_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcement_delivery")),
        sa.UniqueConstraint(
            "announcement_id",
            "resident_id",
            name=op.f("uq_announcement_delivery_announcement_id_resident_id"),
        ),
    )
    op.create_index(
        op.f("ix_announcement_delivery_resident_id"), "announcement_delivery", ["resident_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_announcement_delivery_resident_id"), table_name="announcement_delivery")
    op.drop_table("announcement_delivery")
    op.drop_table("announcement_text")
    op.drop_index("ix_announcement_org_created", table_name="announcement")
    op.drop_table("announcement")
