"""Organizations own their sender numbers; unrouted inbound messages are claimed

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A number (E.164) or Messaging Service SID belongs to at most one organization: an
    # inbound SMS goes to the organization that owns the number it was sent to.
    op.create_table(
        "organization_sender",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("address"),
    )
    op.create_index(
        "ix_organization_sender_organization_id",
        "organization_sender",
        ["organization_id"],
        unique=False,
    )
    # When an organization claimed a message no organization could be identified for.
    # Messages stored for no organization before this revision show as unrouted.
    with op.batch_alter_table("inbound_message") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite has it since 3.35): rebuilding the table,
    # as a batch would on SQLite, fails its foreign keys once rows exist.
    with op.batch_alter_table("inbound_message", recreate="never") as batch:
        batch.drop_column("claimed_at")
    op.drop_index("ix_organization_sender_organization_id", table_name="organization_sender")
    op.drop_table("organization_sender")
