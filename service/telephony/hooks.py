"""What the outbox tells the layers above it, without importing them.

The outbound machinery (outbox, dispatch, reconcile, providers) sits below check-ins and
escalations: it knows rows, not residents. When a send fails, a status is settled, claimed
check-in messages need screening, or alerts are held by their cap, it calls the hooks
installed here. They are installed where the application and the scheduler are put
together (``service.bootstrap``).

Nothing is sent unwired: claiming raises ``OutboxHooksMissing`` before any row is taken, so
a process that forgot to install the hooks can never lose a failure silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from service.telephony.models import OutboxMessage, OutboxStatus

# A message or call will not reach its recipient (or may not have: ambiguous).
FailedHook = Callable[[Session, OutboxMessage, datetime], None]
# Twilio (or reconciliation) settled a message's status.
StatusHook = Callable[[Session, OutboxMessage, OutboxStatus, datetime], None]
# Of the check-in messages just claimed, the ids not to send now.
ScreenHook = Callable[[Session, Collection[uuid.UUID], datetime], set[uuid.UUID]]
# Alert SMS held back by the alert cap: (session, their ids, when they may go, the cap, now).
# The chain must not count a held alert as unanswered.
HeldHook = Callable[[Session, list[uuid.UUID], datetime, int, datetime], None]


@dataclass(frozen=True, slots=True)
class OutboxHooks:
    on_failed: FailedHook
    on_status: StatusHook
    screen_checkin_messages: ScreenHook
    on_alerts_held: HeldHook


class OutboxHooksMissing(RuntimeError):
    """The process did not install the outbox hooks (``service.bootstrap.wire``)."""


_installed: OutboxHooks | None = None


def install_outbox_hooks(hooks: OutboxHooks) -> None:
    global _installed
    _installed = hooks


def outbox_hooks() -> OutboxHooks:
    if _installed is None:
        raise OutboxHooksMissing(
            "the outbox hooks are not installed: call service.bootstrap.wire() where the "
            "application or the scheduler is put together"
        )
    return _installed
