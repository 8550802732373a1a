"""Who did something, in words a person reads: "石川 茂（民生委員）", "スタッフ 山田 花子",
"自動処理", never the raw label the audit log and the timeline store.

The stored labels (``service.audit.service.Actor``) are: ``member:NAME`` for a member's own
SMS or keypad answer, ``Full Name <email>`` for a staff user, ``schedule:NAME`` for a
scheduled round, ``cli:WHO`` for the command line, and a few fixed names for the service's
own work (``scheduler``, ``dispatcher``, ``jma``, ``resident``, ``demo``). A label this
module does not know is shown as it is.
"""

from __future__ import annotations

import re
from typing import Any

from service.web import labels
from service.web.translation import N_, UiText

_STAFF = re.compile(r"^(?P<name>.*?)\s*<[^<>@\s]+@[^<>\s]+>$")

_FIXED: dict[str, str] = {
    "scheduler": N_("Automatic"),
    "dispatcher": N_("Automatic"),
    "jma": N_("Automatic (weather warning)"),
    "resident": N_("The resident"),
    "demo": N_("Demo data"),
}


def describe_actor(text: UiText, label: str | None, member: Any = None) -> str:
    """``label`` in the reader's language. ``member`` (a Member, when the caller knows which
    one acted) adds their kind: 民生委員, 支援者…"""
    if not label:
        return ""
    if label in _FIXED:
        return text.plain(_FIXED[label])
    prefix, _, rest = label.partition(":")
    if prefix == "member" and rest:
        kind = getattr(member, "kind", None) if getattr(member, "name", None) == rest else None
        if kind is not None:
            kind_text = text.plain(labels.label(labels.MEMBER_KINDS, kind))
            return text.plain(N_("%(name)s (%(kind)s)"), name=rest, kind=kind_text)
        return text.plain(N_("%(name)s (member)"), name=rest)
    if prefix == "schedule" and rest:
        return text.plain(N_("Schedule “%(name)s”"), name=rest)
    if prefix == "cli" and rest:
        return text.plain(N_("Command line (%(who)s)"), who=rest)
    staff = _STAFF.match(label)
    if staff:
        return text.plain(N_("Staff %(name)s"), name=staff.group("name") or label)
    return label


def is_member_label(label: str | None, member: Any) -> bool:
    """Whether ``label`` is ``member``'s own (the timeline then names them only once)."""
    return bool(label) and member is not None and label == f"member:{member.name}"
