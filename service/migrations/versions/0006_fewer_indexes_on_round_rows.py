"""Fewer index entries for each row a round writes

A round writes a check-in, an attempt and an outbox row per resident; every index on them
is written too. Two indexes repeated the leading column of a unique index, one was never
read, and two indexed columns that are NULL on every check-in message until much later.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_NULL_ALERT = sa.text("alert_id IS NOT NULL")
NOT_NULL_SID = sa.text("sid IS NOT NULL")


def upgrade() -> None:
    # The unique (round_id, resident_id) and (checkin_id, step_index, channel) indexes
    # serve every look-up by their first column.
    op.drop_index("ix_checkin_round_id", table_name="checkin")
    op.drop_index("ix_checkin_attempt_checkin_id", table_name="checkin_attempt")
    op.drop_index("ix_outbox_organization_id", table_name="outbox")
    op.drop_index("ix_outbox_alert_id", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint("uq_outbox_sid", type_="unique")
    op.create_index(
        "ix_outbox_alert_id",
        "outbox",
        ["alert_id"],
        postgresql_where=NOT_NULL_ALERT,
        sqlite_where=NOT_NULL_ALERT,
    )
    op.create_index(
        "uq_outbox_sid",
        "outbox",
        ["sid"],
        unique=True,
        postgresql_where=NOT_NULL_SID,
        sqlite_where=NOT_NULL_SID,
    )


def downgrade() -> None:
    op.drop_index("uq_outbox_sid", table_name="outbox")
    op.drop_index("ix_outbox_alert_id", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.create_unique_constraint("uq_outbox_sid", ["sid"])
    op.create_index("ix_outbox_alert_id", "outbox", ["alert_id"])
    op.create_index("ix_outbox_organization_id", "outbox", ["organization_id"])
    op.create_index("ix_checkin_attempt_checkin_id", "checkin_attempt", ["checkin_id"])
    op.create_index("ix_checkin_round_id", "checkin", ["round_id"])
