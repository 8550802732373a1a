"""Case codes: a member with several open alerts answers "A7 1", so no two open cases of
an organization may share a code, even when two transactions open cases at the same time."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from service.checkins import flows
from service.escalations.models import Escalation, EscalationReason, EscalationState
from service.registry.models import Organization, Resident

from .conftest import ONE_MESSAGE


def _case(world, key: str, code: str, state=EscalationState.alerting, org=None) -> Escalation:
    return Escalation(
        organization_id=org or world.org_id,
        resident_id=world.residents[key],
        reason=EscalationReason.no_reply,
        state=state,
        case_code=code,
    )


def test_two_open_cases_of_an_organization_never_share_a_code(world):
    world.resident("R1", "090-1000-0001")
    world.resident("R2", "090-1000-0002")
    with world.session() as s:
        s.add(_case(world, "R1", "A7"))
        s.commit()
    with world.session() as s, pytest.raises(IntegrityError):
        s.add(_case(world, "R2", "A7", EscalationState.acknowledged))
        s.commit()
    with world.session() as s, pytest.raises(IntegrityError):
        s.add(_case(world, "R2", "A7", EscalationState.exhausted))
        s.commit()
    # A resolved case's code is free again, and other organizations have their own codes.
    with world.session() as s:
        other = Organization(name="珠洲市社会福祉協議会", timezone="Asia/Tokyo")
        s.add(other)
        s.flush()
        s.add(_case(world, "R2", "A7", EscalationState.resolved))
        s.add(_case(world, "R2", "A7", org=other.id))
        s.commit()
    with world.session() as s:
        assert len(s.exec(select(Escalation).where(Escalation.case_code == "A7")).all()) == 3


def test_a_case_opened_meanwhile_with_the_same_code_sends_the_sweep_round_again(world):
    """The sweep escalates R1 while another transaction opens R2's case and commits it
    with the very code the sweep drew. The sweep's batch is refused, retried at once, and
    R1's case gets a code of its own: each member's "<code> 1" names one case."""
    if world.engine.dialect.name == "sqlite":
        pytest.skip(
            "SQLite opens cases only under its one write lock (the sweep's claim comes "
            "first), so a case cannot be opened meanwhile"
        )
    world.member("M1", "080-3000-0001")
    world.resident("R1", "090-1000-0001")
    world.resident("R2", "090-1000-0002")
    world.assign("R1", "M1", 1)
    world.assign("R2", "M1", 1)
    world.broadcast(resident_ids=[world.residents["R1"]], plan=ONE_MESSAGE)
    world.tick()
    world.clock.advance(minutes=60)
    drawn: list[str] = []

    def same_code_meanwhile(conn, cursor, statement, parameters, context, executemany) -> None:
        if drawn or not statement.lstrip().startswith("INSERT INTO escalation "):
            return
        drawn.append(parameters["case_code"])

        def open_r2() -> None:
            with Session(world.engine) as s:
                s.add(_case(world, "R2", drawn[0]))
                s.commit()

        thread = threading.Thread(target=open_r2)
        thread.start()
        thread.join(30)

    event.listen(world.engine, "before_cursor_execute", same_code_meanwhile)
    try:
        assert flows.sweep_checkins(world.engine, world.clock.now) == 1
    finally:
        event.remove(world.engine, "before_cursor_execute", same_code_meanwhile)
    with world.session() as s:
        cases = {
            c.resident_id: c.case_code
            for c in s.exec(select(Escalation).where(Escalation.state == "alerting")).all()
        }
    assert cases[world.residents["R2"]] == drawn[0]
    assert cases[world.residents["R1"]] not in ("", drawn[0])
    assert len(cases) == 2


def test_the_migration_gives_open_cases_that_share_a_code_fresh_ones(tmp_path):
    """Revision 0007: the oldest open case keeps a shared code, the others get fresh ones
    (audited), closed cases keep theirs, and the index then refuses a new duplicate."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from alembic import command
    from sqlalchemy import (
        DateTime,
        MetaData,
        String,
        Table,
        Uuid,
        column,
        create_engine,
        table,
        text,
    )

    from service import migrate

    url = f"sqlite:///{tmp_path / 'codes.db'}"
    command.upgrade(migrate.alembic_config(url), "0006")  # the models' tables, less the index
    engine = create_engine(url)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    org, other = (SimpleNamespace(id=uuid.uuid4()) for _ in range(2))
    organization = table(
        "organization",
        column("id", Uuid),
        column("name", String),
        column("timezone", String),
        column("created_at", DateTime(timezone=True)),
    )
    with engine.begin() as c:  # the organization table as it was at 0006
        for o, name in ((org, "輪島市社会福祉協議会"), (other, "珠洲市社会福祉協議会")):
            c.execute(
                organization.insert().values(
                    id=o.id, name=name, timezone="Asia/Tokyo", created_at=t0
                )
            )
    # The rows as the tables stood at 0006: today's models carry columns added later
    # (a resident's channels, 0018), so only the columns the old tables have are written.
    old = MetaData()
    resident = Resident(organization_id=org.id, external_id="R1", name="住民 R1")
    cases = [
        Escalation(
            organization_id=organization_id,
            resident_id=resident.id,
            reason=EscalationReason.no_reply,
            state=state,
            case_code="A7",
            created_at=t0 + timedelta(minutes=n),
        )
        for n, (state, organization_id) in enumerate(
            [
                (EscalationState.alerting, org.id),
                (EscalationState.acknowledged, org.id),
                (EscalationState.resolved, org.id),
                (EscalationState.exhausted, org.id),
                (EscalationState.alerting, other.id),
            ]
        )
    ]
    with engine.begin() as c:
        for rows in ([resident], cases):
            as_then = Table(type(rows[0]).__tablename__, old, autoload_with=c)
            for row in rows:
                values = {
                    column.name: getattr(row, column.key)
                    for column in type(row).__table__.columns
                    if column.name in as_then.c
                }
                c.execute(type(row).__table__.insert().values(values))
    ids = [c.id for c in cases]
    migrate.upgrade(url)
    with Session(engine) as s:
        codes = {e.id: e.case_code for e in s.exec(select(Escalation)).all()}
        audit = s.execute(
            text("SELECT entity_id, detail FROM audit_log WHERE actor = 'migration'")
        ).all()
    assert codes[ids[0]] == "A7"  # the oldest open case keeps it
    assert codes[ids[2]] == "A7" and codes[ids[4]] == "A7"  # closed; another organization
    fresh = {codes[ids[1]], codes[ids[3]]}
    assert len(fresh) == 2 and "A7" not in fresh
    assert sorted(uuid.UUID(e) for e, _ in audit) == sorted([ids[1], ids[3]])
    with engine.begin() as c, pytest.raises(IntegrityError):
        c.execute(
            text("UPDATE escalation SET case_code = 'A7', state = 'alerting' WHERE id = :id"),
            {"id": ids[1].hex},
        )


def test_codes_stay_ones_a_member_can_answer_with_when_thousands_are_open():
    import string

    from service.escalations.chains import free_code as _free_code
    from service.escalations.service import parse_member_reply

    short = {f"{letter}{n}" for letter in string.ascii_uppercase for n in range(1, 100)}
    assert len(short) == 2574
    fresh = _free_code(set(short))
    assert fresh not in short and 100 <= int(fresh[1:]) <= 999
    assert parse_member_reply(f"{fresh} 1") == (fresh, "1")
    assert parse_member_reply(f"2 {fresh.lower()}") == (fresh, "2")
    # Nearly full: the one short code left is found, not missed by chance.
    assert _free_code(short - {"Q42"}) == "Q42"
    # While few are open, codes are short.
    assert all(int(_free_code({"A1"})[1:]) <= 99 for _ in range(200))
