"""Words for the values the domain stores, so pages never show a raw enum to staff.

Each text is marked with ``N_`` for extraction and translated when a page is drawn.
"""

from __future__ import annotations

from service.web.translation import N_

# The board's counts, in the order staff read them. The key is the board's own bucket.
BOARD_BUCKETS: dict[str, str] = {
    "ok": N_("Fine"),
    "needs_help": N_("Help"),
    "wants_talk": N_("Talk"),
    "unclear": N_("Unclear"),
    "waiting": N_("Waiting for a reply"),
    "no_reply": N_("No reply after every try"),
    "unreachable": N_("Unreachable"),
    "visit_list": N_("Visit list"),
    "escalated": N_("Escalated"),
    "acknowledged": N_("Acknowledged"),
    "resolved": N_("Resolved"),
}

CHECKIN_STATES: dict[str, str] = {
    "waiting": N_("Waiting for a reply"),
    "ok": N_("Fine"),
    "needs_help": N_("Help"),
    "wants_talk": N_("Talk"),
    "no_reply": N_("No reply after every try"),
    "unreachable": N_("Unreachable"),
    "visit_list": N_("Visit list"),
    "opted_out": N_("Opted out"),
    "superseded": N_("Superseded"),
}

ESCALATION_REASONS: dict[str, str] = {
    "needs_help": N_("Asked for help"),
    "no_reply": N_("No reply after every try"),
    "unreachable": N_("Unreachable"),
    "visit_list": N_("Visit list"),
}

ESCALATION_STATES: dict[str, str] = {
    "alerting": N_("Waiting for a member"),
    "acknowledged": N_("Acknowledged"),
    "exhausted": N_("Nobody took it"),
    "resolved": N_("Resolved"),
}

OUTCOMES: dict[str, str] = {
    "safe": N_("Safe"),
    "needs_support": N_("Needs support"),
    "hospitalised": N_("In hospital"),
    "moved": N_("Moved"),
    "not_found": N_("Not found"),
}

TASK_KINDS: dict[str, str] = {
    "callback": N_("Wants to talk"),
    "unclear": N_("Unclear reply"),
    "opt_out": N_("Stopped messages"),
    "unknown_sender": N_("Unknown number"),
    "late_reply": N_("Late reply"),
    "member_message": N_("Message from a member"),
}

RESIDENT_STATUSES: dict[str, str] = {
    "active": N_("Living here"),
    "away": N_("Away"),
    "moved_out": N_("Moved out"),
    "opted_out": N_("Opted out"),
}

CHANNELS: dict[str, str] = {
    "sms": N_("SMS"),
    "voice": N_("Voice call"),
    "both": N_("SMS and voice"),
    "call": N_("Voice call"),
}

MEMBER_KINDS: dict[str, str] = {
    "welfare_committee": N_("Welfare committee member"),
    "supporter": N_("Supporter"),
    "interpreter": N_("Interpreter"),
    "staff_on_duty": N_("Staff on duty"),
}

STAFF_ROLES: dict[str, str] = {
    "viewer": N_("Viewer"),
    "coordinator": N_("Coordinator"),
    "admin": N_("Admin"),
}

FLAGS: dict[str, str] = {
    "lives_alone": N_("Lives alone"),
    "elderly": N_("Elderly"),
    "disability": N_("Disability"),
    "pregnancy": N_("Pregnancy"),
    "needs_interpreter": N_("Needs an interpreter"),
}

ROUND_KINDS: dict[str, str] = {
    "scheduled": N_("Scheduled"),
    "broadcast": N_("Broadcast"),
    "one_off": N_("One resident"),
}

ROUND_STATUSES: dict[str, str] = {
    "fanning_out": N_("Sending"),
    "open": N_("Open"),
    "closed": N_("Closed"),
}

DELIVERY: dict[str, str] = {
    "pending": N_("Waiting to send"),
    "sending": N_("Sending"),
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "undelivered": N_("Not delivered"),
    "failed": N_("Failed"),
    "ambiguous": N_("Unknown"),
    "cancelled": N_("Cancelled"),
    "answered": N_("Answered"),
    "no_answer": N_("Call not answered"),
    "busy": N_("Busy"),
    "machine": N_("Answering machine"),
}

REPLY_CLASSES: dict[str, str] = {
    "fine": N_("Fine"),
    "help": N_("Help"),
    "talk": N_("Talk"),
    "unclear": N_("Unclear"),
    "stop": N_("Stop"),
    "start": N_("Start again"),
    "change_language": N_("Change language"),
}

TIMELINE_KINDS: dict[str, str] = {
    "note": N_("Staff note"),
    "checkin.visit_list": N_("Put on the visit list"),
    "escalation.opened": N_("Case opened"),
    "escalation.alert": N_("Alert sent to a member"),
    "escalation.alert_failed": N_("Alert could not be delivered"),
    "escalation.alert_held": N_("Alert held back"),
    "escalation.declined": N_("Member declined"),
    "escalation.acknowledged": N_("Member will visit"),
    "escalation.exhausted": N_("Nobody took the case"),
    "escalation.late_reply": N_("Late reply passed on"),
    "escalation.priority": N_("Case priority raised"),
    "escalation.reassigned": N_("Case reassigned"),
    "escalation.reminded": N_("Member reminded"),
    "escalation.resolved": N_("Outcome recorded"),
    "escalation.unacknowledged": N_("Member did not report; chain resumed"),
    "escalation.outcome_reported": N_("Result reported by a member not on the case"),
    "escalation.partner_ended": N_("Partnership ended: the partner's interpreter let go"),
    "reply.sms": N_("Reply understood (SMS)"),
    "reply.voice": N_("Reply understood (keypad)"),
    "whatsapp.in": N_("WhatsApp message received"),
    "line.in": N_("LINE message received"),
    "whatsapp.out.checkin": N_("Check-in on WhatsApp"),
    "line.out.checkin": N_("Check-in on LINE"),
    "line.out.resident_notice": N_("LINE message to the resident"),
    "reply.whatsapp": N_("Reply understood (WhatsApp)"),
    "reply.line": N_("Reply understood (LINE)"),
    "channel.line_linked": N_("LINE account linked"),
    "channel.line_blocked": N_("LINE account blocked us: unlinked"),
    "sms.in": N_("SMS received"),
    "keypad.in": N_("Keypad answer"),
    "call.out": N_("Call placed"),
    "sms.out.checkin": N_("Check-in SMS"),
    "sms.out.resident_notice": N_("SMS to the resident"),
    "sms.out.alert": N_("Alert SMS to a member"),
    "sms.out.member_notice": N_("SMS to a member"),
    "inbox.linked": N_("Message linked to this resident"),
    "inbox.answered": N_("Staff answered by SMS"),
    "referral_consent": N_("Consent to share with a partner recorded"),
    "referral_sent": N_("Referred to a partner"),
    "referral_accepted": N_("Partner accepted the referral"),
    "referral_declined": N_("Partner declined the referral"),
    "referral_contact": N_("Partner made contact"),
    "referral_outcome": N_("Partner recorded the outcome"),
    "referral_closed": N_("Referral closed"),
    "announcement.sent": N_("Announcement sent"),
}

WEEKDAYS: list[str] = [
    N_("Mon"),
    N_("Tue"),
    N_("Wed"),
    N_("Thu"),
    N_("Fri"),
    N_("Sat"),
    N_("Sun"),
]

TARGET_KINDS: dict[str, str] = {
    "all": N_("Everyone"),
    "sites": N_("Chosen sites"),
    "flag": N_("Residents with a flag"),
    "residents": N_("Chosen residents"),
}


def label(table: dict[str, str], value: object) -> str:
    """The message id for ``value`` (its raw text if the table does not know it)."""
    key = str(getattr(value, "value", value))
    return table.get(key, key)
