"""The composition root: where the low layers get the high layers' hooks.

The outbox sits below check-ins and escalations and never imports them; what it must tell
them (a send failed, a status settled, check-in messages to screen before sending) goes
through the hooks installed here. The application (``service.app.create_app``), the
scheduler (``scheduler.jobs.JobContext``) and the tests call ``wire()``; it is idempotent.
Importing this module also registers every table (``service.models``).
"""

from __future__ import annotations

# Every table module, so that foreign keys resolve at the first flush (the database layer
# does not import the domains).
import service.models  # noqa: F401
from service.checkins import events
from service.partners import service as partners
from service.referrals import service as referrals
from service.telephony.hooks import OutboxHooks, install_outbox_hooks


def outbox_hooks() -> OutboxHooks:
    return OutboxHooks(
        on_failed=events.on_outbox_failed,
        on_status=events.on_outbox_status,
        screen_checkin_messages=events.screen_checkin_messages,
        on_alerts_held=events.on_alerts_held,
    )


def wire() -> None:
    install_outbox_hooks(outbox_hooks())
    # Open referrals close when the partnership they were sent under ends.
    partners.on_partnership_end(referrals.close_for_ended_partnership)
