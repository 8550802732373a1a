"""The outbox tells check-ins what happened only through the hooks wired at assembly (#17).

The outbound layer imports no check-ins (``lint-imports`` checks it); these tests show the
other half: what it reports reaches whatever ``service.bootstrap.wire()`` installed, and a
process that installed nothing claims nothing, so no failure can be lost silently.
"""

# The `world` fixture is imported from tests/checkins/conftest.py.
# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

import pytest
from sqlmodel import Session

from service import bootstrap
from service.checkins import events
from service.config import get_settings
from service.telephony import hooks
from service.telephony.dispatch import Result, claim_due, record_results
from service.telephony.errors import PermanentSendError
from service.telephony.models import OutboxChannel, OutboxMessage, OutboxPurpose, OutboxStatus
from service.telephony.outbox import enqueue
from tests.checkins.conftest import World, world  # noqa: F401


def _notice(world: World, now: datetime) -> uuid.UUID:
    with Session(world.engine) as s:
        row = enqueue(
            s,
            organization_id=world.org_id,
            channel=OutboxChannel.sms,
            purpose=OutboxPurpose.member_notice,
            to_phone="+818012345678",
            body="notice",
            now=now,
        )
        s.commit()
        return row.id


def _row(world: World, row_id: uuid.UUID) -> OutboxMessage:
    with Session(world.engine) as s:
        row = s.get(OutboxMessage, row_id)
        assert row is not None
        return row


def test_bootstrap_wires_every_outbox_hook_to_check_ins() -> None:
    bootstrap.wire()
    installed = hooks.outbox_hooks()
    assert installed.on_failed is events.on_outbox_failed
    assert installed.on_status is events.on_outbox_status
    assert installed.screen_checkin_messages is events.screen_checkin_messages
    assert installed.on_alerts_held is events.on_alerts_held


def test_a_process_without_hooks_claims_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = world.clock.now()
    row_id = _notice(world, now)
    monkeypatch.setattr(hooks, "_installed", None)
    with pytest.raises(hooks.OutboxHooksMissing):
        claim_due(world.engine, now=now, channel=OutboxChannel.sms, limit=10, settings=get_settings())
    row = _row(world, row_id)
    assert row.status == OutboxStatus.pending
    assert row.tries == 0


def test_a_failed_send_is_reported_to_the_installed_hook(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = world.clock.now()
    row_id = _notice(world, now)
    reported: list[tuple[uuid.UUID, str]] = []

    def on_failed(session: Session, message: OutboxMessage, at: datetime) -> None:
        reported.append((message.id, message.status))

    wired = hooks.outbox_hooks()
    monkeypatch.setattr(hooks, "_installed", dataclasses.replace(wired, on_failed=on_failed))
    claimed, _ = claim_due(
        world.engine, now=now, channel=OutboxChannel.sms, limit=10, settings=get_settings()
    )
    assert [item.id for item in claimed] == [row_id]
    record_results(
        world.engine, [Result(claimed[0], error=PermanentSendError(21211, "invalid To"))], now
    )
    assert reported == [(row_id, OutboxStatus.failed)]
    assert _row(world, row_id).status == OutboxStatus.failed
