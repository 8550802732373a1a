"""Every text Mimamori sends, by stable message id.

Message ids are symbolic ("resident.checkin"), not English sentences, so rewording the
English text never orphans the other fifteen translations; the English wording lives in
``locales/en``. Each id is wrapped in :func:`N_` so ``pybabel extract -k N_`` (and
``python -m i18n.catalogs update``) finds it, and ``TRANSLATORS:`` comments above it are
copied into the template for translators.

Placeholders use ``str.format`` names: ``{org}``, ``{name}``. Only bare names are
allowed (no ``{0}``, ``{name!r}`` or ``{name:>10}``), and every translation must use
exactly the placeholders declared in :data:`MESSAGES`; ``python -m i18n.catalogs check``
enforces both.

Texts carry what the reader needs to act and nothing more: never health or case details.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import StrEnum


def N_(message_id: str) -> str:
    """Mark a message id for extraction without translating it (there is no locale yet)."""
    return message_id


class Audience(StrEnum):
    """Who reads a message, which decides the channel and its length budget."""

    RESIDENT_SMS = "resident_sms"
    VOICE = "voice"
    MEMBER_SMS = "member_sms"
    FRAGMENT = "fragment"  # inserted into another message, never sent alone


# --- To residents, by SMS -------------------------------------------------------------

# TRANSLATORS: The scheduled check-in. {org} is the council's name, {name} the resident's.
# Keep the digits 1, 2, 3 as ASCII digits: residents answer with them.
RESIDENT_CHECKIN = N_("resident.checkin")
# TRANSLATORS: Sent when the resident has not answered the check-in yet. Same menu.
RESIDENT_CHECKIN_REMINDER = N_("resident.checkin.reminder")
# TRANSLATORS: Reply to "1 = I'm fine".
RESIDENT_REPLY_OK = N_("resident.reply.ok")
# TRANSLATORS: Reply to "2 = I need help": help is coming, someone will contact them.
RESIDENT_REPLY_HELP = N_("resident.reply.help")
# TRANSLATORS: Reply to "3 = I want to talk": someone will call them.
RESIDENT_REPLY_TALK = N_("resident.reply.talk")
# TRANSLATORS: The reply could not be understood; ask again for 1, 2 or 3.
RESIDENT_REPLY_UNCLEAR = N_("resident.reply.unclear")
# TRANSLATORS: Confirms the resident opted out. Keep the keyword START in Latin letters.
RESIDENT_OPTOUT = N_("resident.optout")
# TRANSLATORS: Confirms the resident opted back in. Keep the keyword STOP in Latin letters.
RESIDENT_OPTIN = N_("resident.optin")
# TRANSLATORS: Confirms a change of language. {language} is the language's own name.
RESIDENT_LANGUAGE_CHANGED = N_("resident.language_changed")
# TRANSLATORS: Answer to an SMS from an unknown number (anyone,
# e.g. a relative asking for help): we received it and staff will
# read it; in an emergency, call 119 (fire and ambulance in Japan).
# Keep 119 as ASCII digits. No council name: it may not be known.
RESIDENT_REPLY_RECEIVED = N_("resident.reply.received")

# --- Ready-made staff answers to residents, by SMS ------------------------------------
# Staff pick one in the inbox when they cannot write the resident's language. They carry
# no health or case details: only what happens next.

# TRANSLATORS: A member of staff answers a resident's message: we will call you soon.
RESIDENT_ANSWER_CALL_SOON = N_("resident.answer.call_soon")
# TRANSLATORS: A member of staff answers a resident's message: in an emergency, call 119
# (the fire and ambulance number in Japan). Keep 119 as ASCII digits.
RESIDENT_ANSWER_EMERGENCY = N_("resident.answer.emergency")
# TRANSLATORS: A member of staff answers a resident's message: someone will come to see you.
RESIDENT_ANSWER_VISIT = N_("resident.answer.visit")

# --- To residents, by voice call (read by text-to-speech) -----------------------------

# TRANSLATORS: First words of a check-in call. Spoken, so no symbols or abbreviations.
VOICE_GREETING = N_("voice.greeting")
# TRANSLATORS: The keypad menu: press 1 if fine, 2 for help, 3 to talk.
VOICE_MENU = N_("voice.menu")
# TRANSLATORS: Said after a key was pressed, before hanging up.
VOICE_THANKS = N_("voice.thanks")
# TRANSLATORS: Said when no key was pressed, before hanging up.
VOICE_NO_INPUT = N_("voice.no_input")
# TRANSLATORS: Left on an answering machine: we will call again, or reply to the SMS.
VOICE_VOICEMAIL = N_("voice.voicemail")
# TRANSLATORS: Left on the answering machine of a resident we reach only by phone (a
# landline, or they asked for calls): we will call again. Do not mention text messages or
# SMS: they cannot receive or send them.
VOICE_VOICEMAIL_VOICE_ONLY = N_("voice.voicemail.voice_only")

# --- To welfare committee members and staff, by voice call (an escalation alert) ----------

# TRANSLATORS: First words of an alert call to a member. No name or address (a call may be
# heard by others): the details are in the SMS. {code} is the case code, e.g. A7.
VOICE_ALERT = N_("voice.alert")
# TRANSLATORS: The member's keypad menu: press 1 if you can go and visit, 2 if you cannot.
VOICE_ALERT_MENU = N_("voice.alert_menu")
# TRANSLATORS: Left on a member's answering machine: read and answer our SMS. No details.
VOICE_ALERT_VOICEMAIL = N_("voice.alert_voicemail")
# TRANSLATORS: The alert this call is about no longer waits for the member's answer (they
# answered by SMS, it moved on to someone else, or the case was closed). Do not say that the
# case is taken care of: it may not be.
VOICE_ALERT_CLOSED = N_("voice.alert_closed")

# --- To welfare committee members and staff, by SMS -----------------------------------

# TRANSLATORS: Escalation alert. {site} is the housing site, {unit} the unit number,
# {language} the language the resident speaks, {last_contact} a date and time.
# Reply 1 = I can go, 2 = I cannot.
MEMBER_ALERT = N_("member.alert")
# TRANSLATORS: Same alert for a member with several open alerts: the reply carries the
# short case code {code} (for example "A7").
MEMBER_ALERT_CODED = N_("member.alert.coded")
# TRANSLATORS: Alert for a resident we cannot reach by phone (they opted out of messages
# or have no usable phone), so a member must visit. {site} is the housing site, {unit}
# the unit number, {language} the language the resident speaks. Reply 1 = I can go,
# 2 = I cannot. Keep the digits 1 and 2 as ASCII digits.
MEMBER_ALERT_VISIT = N_("member.alert.visit")
# TRANSLATORS: Same visit alert for a member with several open alerts: the reply carries
# the short case code {code} (for example "A7"). Keep "1 {code}" and "2 {code}" as they are.
MEMBER_ALERT_VISIT_CODED = N_("member.alert.visit.coded")
# TRANSLATORS: Alert when a resident asked for help (replied 2). {last_contact} is the
# date and time they asked. Do not add any health details. Reply 1 = I can go, 2 = I cannot.
MEMBER_ALERT_HELP = N_("member.alert.help")
# TRANSLATORS: Same help alert for a member with several open alerts: the reply carries
# the short case code {code} (for example "A7"). Keep "1 {code}" and "2 {code}" as they are.
MEMBER_ALERT_HELP_CODED = N_("member.alert.help.coded")
# TRANSLATORS: Extra first line of an alert saying what triggered it, e.g. an earthquake.
MEMBER_ALERT_CAUSE = N_("member.alert.cause")
# TRANSLATORS: A cause for member.alert.cause: an earthquake at {time} near {place},
# with JMA seismic intensity {intensity} (for example "6弱").
CAUSE_EARTHQUAKE = N_("cause.earthquake")
# TRANSLATORS: Confirms that the member who replied 1 is now the one visiting.
MEMBER_ACK = N_("member.ack")
# TRANSLATORS: A member replied 1 but someone else had already taken the visit.
MEMBER_ALREADY_TAKEN = N_("member.already_taken")
# TRANSLATORS: The member replied 2 (cannot go): thank them; someone else will be asked.
MEMBER_DECLINED = N_("member.declined")
# TRANSLATORS: The member acknowledged but has not sent the result of the visit yet.
MEMBER_REMINDER = N_("member.reminder")
# TRANSLATORS: Asks for the result of a visit. A result is the case code FIRST, then the
# digit: "{code} 1" safe, "{code} 2" needs support, "{code} 3" in hospital, "{code} 4"
# moved, "{code} 5" could not find. Ends with: if you cannot go after all, reply "2 {code}"
# (digit first, as an answer to the alert). Keep "{code} 1" ... "{code} 5" and "2 {code}"
# in exactly this order, with ASCII digits.
MEMBER_OUTCOME_REQUEST = N_("member.outcome_request")
# TRANSLATORS: Confirms the result of a visit was recorded.
MEMBER_OUTCOME_RECORDED = N_("member.outcome_recorded")
# TRANSLATORS: The resident answered after the alert went out. {answer} is one of the
# answer.* texts, {time} a time of day. The visit result is still needed.
MEMBER_RESIDENT_REPLIED = N_("member.resident_replied")
# TRANSLATORS: The member has several open cases and the reply had no case code.
# {codes} is a list of short codes such as "A7, B12". Gives both forms: an answer to an
# alert is the digit first ("1 A7" I can go), a result is the code first ("A7 1" safe).
# Keep "1 A7" and "A7 1" as they are.
MEMBER_WHICH_CASE = N_("member.which_case")
# TRANSLATORS: A member's reply could not be understood. Lists both menus: an answer to an
# alert is the digit first ("1 A7" I can go, "2 A7" I cannot); a result is the code first
# ("A7 1" safe ... "A7 5" could not find, as in member.outcome_request). A7 stands for the
# case code. Keep "1 A7", "2 A7" and "A7 1" ... "A7 5" as they are.
MEMBER_UNCLEAR = N_("member.unclear")
# TRANSLATORS: The member took the visit but sent no result in time, so the visit was
# passed to someone else. If they did visit, they can still reply with the result, code
# first: "{code} 1" if safe, "{code} 2" if they need support. Keep those as they are.
MEMBER_HANDED_ON = N_("member.handed_on")
# TRANSLATORS: The member who already took the visit to {name} (case {code}) sent "1"
# again. Nothing changed: the visit is still theirs. After the visit they send the result
# code first: "{code} 1" if safe, "{code} 2" if they need support. Keep those as they are.
MEMBER_ACK_AGAIN = N_("member.ack_again")
# TRANSLATORS: The member who had taken the visit to {name} (case {code}) sent "2": they
# cannot go after all, so someone else will be asked. If they meant the visit's result
# "needs support", they reply "{code} 2" (code first). Keep "{code} 2" as it is.
MEMBER_HANDED_BACK = N_("member.handed_back")
# TRANSLATORS: To a supporter who speaks the resident's language: the resident replied 3
# (would like to talk). {language} is the resident's language, {phone} their number to call.
MEMBER_CALLBACK = N_("member.callback")

# --- Short labels inserted into other messages ----------------------------------------

# TRANSLATORS: The resident's answer "1", as a short phrase inside member.resident_replied.
ANSWER_OK = N_("answer.ok")
# TRANSLATORS: The resident's answer "2", as a short phrase.
ANSWER_HELP = N_("answer.help")
# TRANSLATORS: The resident's answer "3", as a short phrase.
ANSWER_TALK = N_("answer.talk")
# TRANSLATORS: A reply that could not be understood, as a short phrase.
ANSWER_UNCLEAR = N_("answer.unclear")
# TRANSLATORS: Said in a call instead of the council's name when the voice cannot read its
# Japanese name and no name in this language is known: "your social welfare council"
# (社会福祉協議会, the body that checks on residents). It fills {org} after "This is" in
# voice.greeting, voice.voicemail and voice.alert. Spoken: no abbreviations.
ORG_GENERIC = N_("name.org_generic")


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """The contract every translation of one message must keep."""

    message_id: str
    audience: Audience
    placeholders: frozenset[str]


def _spec(message_id: str, audience: Audience, *placeholders: str) -> MessageSpec:
    return MessageSpec(message_id, audience, frozenset(placeholders))


_RESIDENT = Audience.RESIDENT_SMS
_VOICE = Audience.VOICE
_MEMBER = Audience.MEMBER_SMS
_FRAGMENT = Audience.FRAGMENT
_WHO = ("name", "site", "unit")

MESSAGES: dict[str, MessageSpec] = {
    spec.message_id: spec
    for spec in (
        _spec(RESIDENT_CHECKIN, _RESIDENT, "org", "name"),
        _spec(RESIDENT_CHECKIN_REMINDER, _RESIDENT, "org", "name"),
        _spec(RESIDENT_REPLY_OK, _RESIDENT, "org"),
        _spec(RESIDENT_REPLY_HELP, _RESIDENT, "org"),
        _spec(RESIDENT_REPLY_TALK, _RESIDENT, "org"),
        _spec(RESIDENT_REPLY_UNCLEAR, _RESIDENT, "org"),
        _spec(RESIDENT_OPTOUT, _RESIDENT, "org"),
        _spec(RESIDENT_OPTIN, _RESIDENT, "org"),
        _spec(RESIDENT_LANGUAGE_CHANGED, _RESIDENT, "org", "language"),
        _spec(RESIDENT_REPLY_RECEIVED, _RESIDENT),
        _spec(RESIDENT_ANSWER_CALL_SOON, _RESIDENT, "org"),
        _spec(RESIDENT_ANSWER_EMERGENCY, _RESIDENT, "org"),
        _spec(RESIDENT_ANSWER_VISIT, _RESIDENT, "org"),
        _spec(VOICE_GREETING, _VOICE, "org"),
        _spec(VOICE_MENU, _VOICE),
        _spec(VOICE_THANKS, _VOICE),
        _spec(VOICE_NO_INPUT, _VOICE),
        _spec(VOICE_VOICEMAIL, _VOICE, "org"),
        _spec(VOICE_VOICEMAIL_VOICE_ONLY, _VOICE, "org"),
        _spec(VOICE_ALERT, _VOICE, "org", "code"),
        _spec(VOICE_ALERT_MENU, _VOICE),
        _spec(VOICE_ALERT_VOICEMAIL, _VOICE, "org"),
        _spec(VOICE_ALERT_CLOSED, _VOICE),
        _spec(MEMBER_ALERT, _MEMBER, "org", *_WHO, "language", "last_contact"),
        _spec(MEMBER_ALERT_CODED, _MEMBER, "org", *_WHO, "language", "last_contact", "code"),
        _spec(MEMBER_ALERT_VISIT, _MEMBER, "org", *_WHO, "language"),
        _spec(MEMBER_ALERT_VISIT_CODED, _MEMBER, "org", *_WHO, "language", "code"),
        _spec(MEMBER_ALERT_HELP, _MEMBER, "org", *_WHO, "language", "last_contact"),
        _spec(MEMBER_ALERT_HELP_CODED, _MEMBER, "org", *_WHO, "language", "last_contact", "code"),
        _spec(MEMBER_ALERT_CAUSE, _MEMBER, "cause"),
        _spec(CAUSE_EARTHQUAKE, _FRAGMENT, "time", "place", "intensity"),
        _spec(MEMBER_ACK, _MEMBER, *_WHO),
        _spec(MEMBER_ALREADY_TAKEN, _MEMBER, "name"),
        _spec(MEMBER_DECLINED, _MEMBER, "name"),
        _spec(MEMBER_REMINDER, _MEMBER, "org", *_WHO),
        _spec(MEMBER_OUTCOME_REQUEST, _MEMBER, "name", "code"),
        _spec(MEMBER_OUTCOME_RECORDED, _MEMBER, "name"),
        _spec(MEMBER_RESIDENT_REPLIED, _MEMBER, "org", *_WHO, "time", "answer"),
        _spec(MEMBER_WHICH_CASE, _MEMBER, "codes"),
        _spec(MEMBER_UNCLEAR, _MEMBER),
        _spec(MEMBER_HANDED_ON, _MEMBER, "name", "code"),
        _spec(MEMBER_ACK_AGAIN, _MEMBER, "name", "code"),
        _spec(MEMBER_HANDED_BACK, _MEMBER, "name", "code"),
        _spec(MEMBER_CALLBACK, _MEMBER, "name", "language", "phone"),
        _spec(ANSWER_OK, _FRAGMENT),
        _spec(ANSWER_HELP, _FRAGMENT),
        _spec(ANSWER_TALK, _FRAGMENT),
        _spec(ANSWER_UNCLEAR, _FRAGMENT),
        _spec(ORG_GENERIC, _FRAGMENT),
    )
}

#: The ready-made answers staff can send from the inbox, in the order they are offered.
READY_ANSWER_IDS: tuple[str, ...] = (
    RESIDENT_ANSWER_CALL_SOON,
    RESIDENT_ANSWER_EMERGENCY,
    RESIDENT_ANSWER_VISIT,
)

RESIDENT_SMS_IDS: tuple[str, ...] = tuple(
    spec.message_id for spec in MESSAGES.values() if spec.audience is Audience.RESIDENT_SMS
)
VOICE_IDS: tuple[str, ...] = tuple(
    spec.message_id for spec in MESSAGES.values() if spec.audience is Audience.VOICE
)

#: Realistic worst-case values for length budgets: a long council name in kanji (which
#: also forces UCS-2), a long four-part name, a long site name and a full timestamp.
LONG_SAMPLE_VALUES: dict[str, str] = {
    "org": "輪島市社会福祉協議会",
    "name": "Maria Aparecida dos Santos Oliveira",
    "site": "輪島市マリンタウン第二仮設団地",
    "unit": "12-304",
    "language": "Bahasa Indonesia",
    "last_contact": "2024/01/02 14:10",
    "time": "14:10",
    "code": "A7",
    "codes": "A7, B12, C3",
    "cause": "the earthquake at 16:10 (Noto, intensity 7)",
    "place": "能登地方",
    "intensity": "6強",
    "answer": "needs help",
    "phone": "090-1234-5678",
}


class PlaceholderSyntaxError(ValueError):
    """A message text uses a placeholder form other than a bare ``{name}``."""


def placeholders_in(text: str) -> frozenset[str]:
    """The ``{name}`` placeholders in ``text``.

    Raises :class:`PlaceholderSyntaxError` for positional fields, attribute or index
    access, conversions, format specs and unbalanced braces: any of those could leak
    object internals or crash at send time in a scheduler job nobody is watching.
    """
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise PlaceholderSyntaxError(f"unbalanced braces in {text!r}: {error}") from error
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier() or format_spec or conversion:
            raw = "{" + field_name + (f"!{conversion}" if conversion else "")
            raw += (f":{format_spec}" if format_spec else "") + "}"
            raise PlaceholderSyntaxError(
                f"placeholder {raw} in {text!r} must be a bare name like {{org}}"
            )
        names.add(field_name)
    return frozenset(names)
