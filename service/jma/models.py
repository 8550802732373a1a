"""Tables for automatic checks after an earthquake or tsunami warning (JMA XML).

- ``jma_trigger_policy``: one row per organization; no row means the defaults.
- ``jma_bulletin``: every bulletin processed, keyed by its identity, so the feed poller and
  the push endpoint can both see the same bulletin and it is acted on once.
- ``jma_decision``: what each concerned organization decided about a bulletin, including the
  dry runs of drills, so staff can see why a round did (or did not) start.
- ``jma_pending_trigger``: a broadcast waiting for its hold-off; a cancellation (取消) before
  ``fire_at`` cancels it, and a sweep fires it when due (the deadline is a column).
- ``jma_area_trigger``: the last triggered strength per organization, area and event, for
  the aftershock rule.
- ``jma_feed_entry``: Atom entries already seen, so polling is idempotent across restarts.

Which sites follow which areas is not stored here: it is ``Site.jma_area_code`` and
``Site.tsunami_area_code`` in the registry.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from service.common import id_field, timestamp_field
from service.jma.parser import BulletinError, Intensity
from service.jma.policy import TSUNAMI_KIND_BY_NAME, PolicySettings

# --- The trigger policy -------------------------------------------------------------------------

HOLD_OFF_MAX_MINUTES = 60
AFTERSHOCK_WINDOW_MAX_HOURS = 7 * 24
MAX_REPORT_AGE_MAX_MINUTES = 24 * 60


def _check_intensity(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        intensity = Intensity.parse(str(value))
    except BulletinError:
        raise ValueError(
            "min_intensity must be a JMA intensity: 1, 2, 3, 4, 5-, 5+, 6-, 6+ or 7 "
            "(5弱 and 震度5強 are accepted too)"
        ) from None
    if intensity.unreceived:
        raise ValueError("min_intensity must be a confirmed intensity such as 5-")
    return intensity.value


def _check_tsunami_kind(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in TSUNAMI_KIND_BY_NAME:
        raise ValueError(
            f"tsunami_min_kind must be one of {', '.join(TSUNAMI_KIND_BY_NAME)}, "
            "or null to ignore tsunami bulletins"
        )
    return value


class _PolicyValidators(SQLModel):
    @field_validator("min_intensity", mode="before", check_fields=False)
    @classmethod
    def _intensity(cls, value: object) -> object:
        return _check_intensity(value) if isinstance(value, str) else value

    @field_validator("tsunami_min_kind", check_fields=False)
    @classmethod
    def _tsunami(cls, value: str | None) -> str | None:
        return _check_tsunami_kind(value)


class JmaTriggerPolicyBase(SQLModel):
    enabled: bool = True
    # The weakest intensity in one of the organization's areas that starts a round.
    min_intensity: str = Field(default="5-", max_length=4)
    # The weakest tsunami kind (advisory, warning, major_warning) that starts a round;
    # None ignores tsunami bulletins.
    tsunami_min_kind: str | None = Field(default="warning", max_length=16)
    # Wait this long before contacting anyone, so a 取消 of a false report can stop it.
    hold_off_minutes: int = Field(default=0, ge=0, le=HOLD_OFF_MAX_MINUTES)
    # After a broadcast for an area, further quakes there within the window start another
    # only if stronger (or, with the next setting, if they are a different quake).
    aftershock_window_hours: int = Field(default=6, ge=0, le=AFTERSHOCK_WINDOW_MAX_HOURS)
    new_quake_in_window_starts_broadcast: bool = False
    # A frightened resident at 3 a.m. is exactly who we check on.
    override_quiet_hours: bool = True
    # A report older than this (when it reaches us) is recorded but starts nothing.
    max_report_age_minutes: int = Field(default=60, ge=1, le=MAX_REPORT_AGE_MAX_MINUTES)
    # Drills (訓練) and tests (試験) never contact anyone; with this on they are recorded as a
    # dry run that tells staff what would have happened.
    dry_run_drills: bool = True


class JmaTriggerPolicy(JmaTriggerPolicyBase, table=True):
    __tablename__ = "jma_trigger_policy"
    organization_id: uuid.UUID = Field(
        foreign_key="organization.id", primary_key=True, ondelete="CASCADE"
    )
    updated_at: datetime = timestamp_field()
    updated_by: str | None = Field(default=None, max_length=200)

    def settings(self) -> PolicySettings:
        return policy_settings(self)


def policy_settings(row: JmaTriggerPolicyBase | None) -> PolicySettings:
    """The pure-policy view of a row; no row means the defaults."""
    if row is None:
        return PolicySettings()
    return PolicySettings(
        enabled=row.enabled,
        min_intensity=Intensity(row.min_intensity),
        tsunami_min_kind=(
            TSUNAMI_KIND_BY_NAME[row.tsunami_min_kind] if row.tsunami_min_kind else None
        ),
        hold_off=timedelta(minutes=row.hold_off_minutes),
        aftershock_window=timedelta(hours=row.aftershock_window_hours),
        new_quake_in_window_starts_broadcast=row.new_quake_in_window_starts_broadcast,
        override_quiet_hours=row.override_quiet_hours,
        max_report_age=timedelta(minutes=row.max_report_age_minutes),
        dry_run_drills=row.dry_run_drills,
    )


class JmaTriggerPolicyUpdate(_PolicyValidators):
    """PUT body: fields left out keep their current value."""

    enabled: bool | None = None
    min_intensity: str | None = None
    tsunami_min_kind: str | None = None
    hold_off_minutes: int | None = Field(default=None, ge=0, le=HOLD_OFF_MAX_MINUTES)
    aftershock_window_hours: int | None = Field(default=None, ge=0, le=AFTERSHOCK_WINDOW_MAX_HOURS)
    new_quake_in_window_starts_broadcast: bool | None = None
    override_quiet_hours: bool | None = None
    max_report_age_minutes: int | None = Field(default=None, ge=1, le=MAX_REPORT_AGE_MAX_MINUTES)
    dry_run_drills: bool | None = None


class JmaTriggerPolicyPublic(JmaTriggerPolicyBase):
    is_default: bool = False  # no policy saved yet: these are the defaults in effect
    updated_at: datetime | None = None
    updated_by: str | None = None
    sites_following_quake_areas: int = 0
    sites_following_tsunami_areas: int = 0


# --- Bulletins and decisions --------------------------------------------------------------------


class JmaBulletin(SQLModel, table=True):
    """A bulletin that was processed. The unique identity makes processing happen once."""

    __tablename__ = "jma_bulletin"
    id: uuid.UUID = id_field()
    # kind|event id|report time|info type|serial|status (see service.bulletin_identity)
    identity: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    sha256: str = Field(max_length=64)
    kind: str = Field(max_length=8)
    event_id: str = Field(max_length=64, index=True)
    report_datetime: datetime = timestamp_field()
    info_type: str = Field(max_length=12)
    status: str = Field(max_length=8)
    serial: int | None = None
    title: str = Field(max_length=200)
    headline: str | None = Field(default=None, sa_type=Text)
    max_intensity: str | None = Field(default=None, max_length=8)
    max_tsunami: str | None = Field(default=None, max_length=16)
    source: str = Field(max_length=16)  # feed, push, cli
    received_at: datetime = timestamp_field()


class JmaDecision(SQLModel, table=True):
    """What one organization decided about one bulletin, and why."""

    __tablename__ = "jma_decision"
    __table_args__ = (Index("ix_jma_decision_org_created", "organization_id", "created_at"),)
    id: uuid.UUID = id_field()
    bulletin_id: uuid.UUID = Field(foreign_key="jma_bulletin.id", ondelete="CASCADE", index=True)
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    # broadcast, below_threshold, aftershock_suppressed, too_old, disabled, cancel,
    # cancelled_after_broadcast
    verdict: str = Field(max_length=32)
    dry_run: bool = False
    reason: str = Field(default="", max_length=300)
    cause: str | None = Field(default=None, max_length=300)
    site_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    areas: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    suppressed_areas: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    # Dry runs: how many residents would have been contacted, or put on the visit list.
    would_contact: int | None = None
    would_visit: int | None = None
    pending_trigger_id: uuid.UUID | None = Field(
        default=None, foreign_key="jma_pending_trigger.id", ondelete="SET NULL"
    )
    created_at: datetime = timestamp_field()


class JmaPendingTrigger(SQLModel, table=True):
    """A broadcast decided on but not started yet (hold-off), or started (fired_at)."""

    __tablename__ = "jma_pending_trigger"
    __table_args__ = (
        Index("ix_jma_pending_due", "fire_at"),
        Index("ix_jma_pending_event", "organization_id", "event_id"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    bulletin_id: uuid.UUID = Field(foreign_key="jma_bulletin.id", ondelete="CASCADE")
    event_id: str = Field(max_length=64)
    area_kind: str = Field(max_length=8)  # quake or tsunami
    # The bulletin kinds that support it; a 取消 of the last one cancels it.
    bulletin_kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    site_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    cause: str = Field(max_length=300)
    top_level: int = 0
    override_quiet_hours: bool = True
    started_by: str = Field(max_length=200)
    created_at: datetime = timestamp_field()
    fire_at: datetime = timestamp_field()
    fired_at: datetime | None = timestamp_field(nullable=True)
    cancelled_at: datetime | None = timestamp_field(nullable=True)
    cancel_reason: str | None = Field(default=None, max_length=300)
    round_id: uuid.UUID | None = Field(default=None, foreign_key="round.id", ondelete="SET NULL")


class JmaAreaTrigger(SQLModel, table=True):
    """The strength that triggered a broadcast for one area: the aftershock rule's memory."""

    __tablename__ = "jma_area_trigger"
    __table_args__ = (
        Index("ix_jma_area_trigger_lookup", "organization_id", "area_kind", "area_code", "at"),
    )
    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    pending_trigger_id: uuid.UUID = Field(
        foreign_key="jma_pending_trigger.id", ondelete="CASCADE", index=True
    )
    area_kind: str = Field(max_length=8)
    area_code: str = Field(max_length=8)
    event_id: str = Field(max_length=64)
    level: int
    label: str = Field(max_length=32)
    at: datetime = timestamp_field()  # the report time of the triggering bulletin
    cancelled_at: datetime | None = timestamp_field(nullable=True)


class JmaDecisionPublic(SQLModel):
    id: uuid.UUID
    created_at: datetime
    verdict: str
    dry_run: bool
    reason: str
    cause: str | None
    site_ids: list[str]
    areas: list[dict[str, Any]]
    suppressed_areas: list[dict[str, Any]]
    would_contact: int | None
    would_visit: int | None
    bulletin_kind: str
    bulletin_title: str
    event_id: str
    report_datetime: datetime
    status: str
    info_type: str
    fire_at: datetime | None = None
    fired_at: datetime | None = None
    cancelled_at: datetime | None = None
    round_id: uuid.UUID | None = None


# --- The feed -----------------------------------------------------------------------------------


class JmaFeedEntry(SQLModel, table=True):
    """An Atom entry the poller has seen: processed once, retried a few times on errors."""

    __tablename__ = "jma_feed_entry"
    id: uuid.UUID = id_field()
    entry_id: str = Field(max_length=500, sa_column_kwargs={"unique": True})
    url: str = Field(max_length=1000)
    title: str = Field(max_length=200)
    updated: datetime = timestamp_field()
    first_seen_at: datetime = timestamp_field()
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    processed_at: datetime | None = timestamp_field(nullable=True, index=True)
    gave_up_at: datetime | None = timestamp_field(nullable=True)
    bulletin_id: uuid.UUID | None = Field(
        default=None, foreign_key="jma_bulletin.id", ondelete="SET NULL"
    )
