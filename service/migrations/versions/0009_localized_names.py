"""Organizations and sites have a name per language

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("organization", "site")


def upgrade() -> None:
    # {language code: name}; existing rows get no names, so every message keeps the
    # Japanese name until someone adds one.
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("names", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite has it since 3.35): rebuilding the table,
    # as a batch would on SQLite, fails its foreign keys once sites and residents exist.
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column("names")
