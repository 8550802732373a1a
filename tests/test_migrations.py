"""Schema changes go through Alembic only: the migrations must build exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service import migrate
from service.models import metadata


def test_migrations_build_exactly_what_the_models_describe(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    assert migrate.is_current(engine)


def test_migrations_go_down_and_up_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    migrate.upgrade(url)
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "base")
    migrate.upgrade(url)
    from service.db import make_engine

    assert migrate.is_current(make_engine(url))


def test_the_organization_windows_go_down_and_up_again_with_data(tmp_path):
    """Revision 0008 on a database that has an organization and a site pointing at it."""
    import uuid
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import text

    from service.db import make_engine

    url = f"sqlite:///{tmp_path / 'windows.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    org = uuid.uuid4().hex
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO organization (id, name, timezone, ack_minutes, outcome_hours,"
                " created_at) VALUES (:id, '輪島市社会福祉協議会', 'Asia/Tokyo', 15, 2, :now)"
            ),
            {"id": org, "now": now},
        )
        c.execute(
            text(
                "INSERT INTO site (id, organization_id, name, created_at, updated_at)"
                " VALUES (:id, :org, '宅田町第2団地', :now, :now)"
            ),
            {"id": uuid.uuid4().hex, "org": org, "now": now},
        )
    engine.dispose()
    command.downgrade(migrate.alembic_config(url), "0007")
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.connect() as c:
        row = c.execute(text("SELECT ack_minutes, outcome_hours FROM organization")).one()
        assert tuple(row) == (30, 4)  # the defaults again
        assert c.execute(text("SELECT count(*) FROM site")).scalar_one() == 1
    engine.dispose()
