"""Indexes for matching an inbound SMS to its sender by phone number

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_resident_phone", "resident", ["phone"])
    op.create_index("ix_resident_phone2", "resident", ["phone2"])
    op.create_index("ix_member_phone", "member", ["phone"])


def downgrade() -> None:
    op.drop_index("ix_member_phone", table_name="member")
    op.drop_index("ix_resident_phone2", table_name="resident")
    op.drop_index("ix_resident_phone", table_name="resident")
