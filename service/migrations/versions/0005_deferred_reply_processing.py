"""A resident's SMS is answered at once and acted on by the scheduler

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch:
        batch.add_column(sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
    # Everything stored before this revision was acted on inside its webhook request.
    op.execute("UPDATE inbound_message SET processed_at = received_at")
    op.create_index("ix_inbound_unprocessed", "inbound_message", ["processed_at", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_unprocessed", table_name="inbound_message")
    with op.batch_alter_table("inbound_message") as batch:
        batch.drop_column("language")
        batch.drop_column("processed_at")
