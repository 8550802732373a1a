"""The ``partnership`` table: an invitation from one organization's admin to another's.

Everything organizations do together (referrals, shared interpreters) works only while a
partnership between them is ``active``. At most one partnership of a pair (in either
direction) is not yet ended: ``open_pair`` holds the pair's two ids in sorted order while
the partnership is invited or active, and is cleared when it is declined or ended, so a
unique constraint on it keeps a second one from being opened (NULLs never collide).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from service.common import StrictBody, id_field, timestamp_field


class PartnershipStatus(StrEnum):
    invited = "invited"
    active = "active"
    declined = "declined"
    ended = "ended"


#: The statuses that hold the pair: a new invitation between the two is refused meanwhile.
OPEN_STATUSES = frozenset({PartnershipStatus.invited, PartnershipStatus.active})


def pair_key(a: uuid.UUID, b: uuid.UUID) -> str:
    """The unordered pair as one value: the same whichever side invited."""
    low, high = sorted((a.hex, b.hex))
    return f"{low}:{high}"


class Partnership(SQLModel, table=True):
    __tablename__ = "partnership"

    id: uuid.UUID = id_field()
    inviter_org_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    invitee_org_id: uuid.UUID = Field(foreign_key="organization.id", index=True)
    status: PartnershipStatus = Field(default=PartnershipStatus.invited, sa_type=String(16))
    invited_by: uuid.UUID | None = None
    accepted_by: uuid.UUID | None = None
    ended_by: uuid.UUID | None = None
    created_at: datetime = timestamp_field()
    accepted_at: datetime | None = timestamp_field(nullable=True)
    ended_at: datetime | None = timestamp_field(nullable=True)
    # The pair's key while invited or active, NULL once declined or ended (see above).
    open_pair: str | None = Field(default=None, max_length=65, sa_column_kwargs={"unique": True})

    def other_side(self, org_id: uuid.UUID) -> uuid.UUID:
        return self.invitee_org_id if org_id == self.inviter_org_id else self.inviter_org_id


class PartnershipPublic(SQLModel):
    id: uuid.UUID
    inviter_org_id: uuid.UUID
    invitee_org_id: uuid.UUID
    status: PartnershipStatus
    created_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    # Filled by the view for the caller: the other organization and its name.
    partner_org_id: uuid.UUID | None = None
    partner_name: str | None = None
    direction: str | None = None  # "sent" or "received"


class PartnershipInvite(StrictBody):
    """``organization_id`` or ``organization_name`` (exact) names the organization invited."""

    organization_id: uuid.UUID | None = None
    organization_name: str | None = Field(default=None, max_length=200)
