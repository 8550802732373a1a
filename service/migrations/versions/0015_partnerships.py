"""Partnerships, consent to share and referrals (issue 21)

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _partnership() -> None:
    op.create_table(
        "partnership",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("inviter_org_id", sa.Uuid(), nullable=False),
        sa.Column("invitee_org_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.Column("ended_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("open_pair", sqlmodel.sql.sqltypes.AutoString(length=65), nullable=True),
        sa.ForeignKeyConstraint(["inviter_org_id"], ["organization.id"]),
        sa.ForeignKeyConstraint(["invitee_org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_pair"),
    )
    op.create_index("ix_partnership_inviter_org_id", "partnership", ["inviter_org_id"])
    op.create_index("ix_partnership_invitee_org_id", "partnership", ["invitee_org_id"])


def upgrade() -> None:
    _partnership()


def downgrade() -> None:
    op.drop_index("ix_partnership_invitee_org_id", table_name="partnership")
    op.drop_index("ix_partnership_inviter_org_id", table_name="partnership")
    op.drop_table("partnership")
