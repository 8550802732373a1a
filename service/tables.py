"""The one MetaData every table registers in, with stable constraint names.

Its own module, below both ``db`` (engines, sessions) and ``models`` (every table module,
imported where the application, the scheduler and the migrations are put together), so
that neither has to import the other.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel

# Stable constraint names, so Alembic batch migrations on SQLite can find them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata
