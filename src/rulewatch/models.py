"""SQLAlchemy 2 typed models: the database is the source of truth."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))  # keep microseconds
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class Rule(Base):
    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[dict[str, Any]]
    conditions: Mapped[list[Any]]
    interval_s: Mapped[int | None]
    cron: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    stability_target: Mapped[float] = mapped_column(Float, default=0.99)
    alert: Mapped[dict[str, Any] | None]  # AlertSpec as JSON; None: the global defaults
    alert_state: Mapped[dict[str, Any] | None]  # domain.incidents.IncidentState as JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # set by update_rule only
    # scheduling state, written by claims and by recorded verifications
    next_due_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(36), index=True)
    # due runs dispatched again after their claim expired or was given back (for /metrics)
    redispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_status: Mapped[str | None] = mapped_column(String(8))
    last_verified_at: Mapped[datetime | None]

    tags: Mapped[list[RuleTag]] = relationship(
        back_populates="rule", cascade="all, delete-orphan", lazy="selectin", order_by="RuleTag.tag"
    )

    __table_args__ = (Index("ix_rules_due", "enabled", "next_due_at"),)

    @property
    def tag_names(self) -> list[str]:
        """The rule's tags as plain strings."""
        return [t.tag for t in self.tags]


class RuleTag(Base):
    __tablename__ = "rule_tags"

    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    rule: Mapped[Rule] = relationship(back_populates="tags")


class Verification(Base):
    __tablename__ = "verifications"

    # fixed at dispatch, so a redelivered message cannot record the same run twice
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    scheduled_for: Mapped[datetime | None]
    started_at: Mapped[datetime]
    duration_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))
    conditions: Mapped[list[Any]]
    measured: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(12), default="schedule")
    # run while a maintenance window covered the rule: shown, never counted in rates
    in_maintenance: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_verifications_rule_started", "rule_id", "started_at"),
        Index("ix_verifications_started", "started_at"),  # retention deletes by age
    )


class _RollupColumns:
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    passed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    maintenance: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duration_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    duration_max_ms: Mapped[float] = mapped_column(Float, default=0.0)


# Histogram bounds of the daily rollups, in ms (columns ``duration_le_50ms`` ...): /metrics
DURATION_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000)
LAG_BOUNDS_MS = (250, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000)


def _count() -> Any:
    return mapped_column(Integer, default=0, server_default="0")


class _HistogramColumns:
    """Cumulative counts (samples at or under each bound), as Prometheus histograms read them.

    Daily rollups only: hourly rows are 24 times as many and nothing reads these from them.
    Durations cover every sample (their count is passed + failed + errors + maintenance);
    lag (``started_at - scheduled_for``) covers scheduled runs only.
    """

    duration_le_50ms: Mapped[int] = _count()
    duration_le_100ms: Mapped[int] = _count()
    duration_le_250ms: Mapped[int] = _count()
    duration_le_500ms: Mapped[int] = _count()
    duration_le_1000ms: Mapped[int] = _count()
    duration_le_2500ms: Mapped[int] = _count()
    duration_le_5000ms: Mapped[int] = _count()
    duration_le_10000ms: Mapped[int] = _count()
    lag_count: Mapped[int] = _count()
    lag_sum_ms: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    lag_le_250ms: Mapped[int] = _count()
    lag_le_500ms: Mapped[int] = _count()
    lag_le_1000ms: Mapped[int] = _count()
    lag_le_2000ms: Mapped[int] = _count()
    lag_le_5000ms: Mapped[int] = _count()
    lag_le_10000ms: Mapped[int] = _count()
    lag_le_30000ms: Mapped[int] = _count()
    lag_le_60000ms: Mapped[int] = _count()
    lag_le_300000ms: Mapped[int] = _count()


class HourlyRollup(_RollupColumns, Base):
    __tablename__ = "rollups_hourly"
    __table_args__ = (Index("ix_rollups_hourly_bucket", "bucket"),)


class DailyRollup(_RollupColumns, _HistogramColumns, Base):
    __tablename__ = "rollups_daily"
    __table_args__ = (Index("ix_rollups_daily_bucket", "bucket"),)


class DataSource(Base):
    """A named database that sql rules read from; its DSN is never returned by the API."""

    __tablename__ = "datasources"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    dsn: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One message to send, written before it is sent (the outbox); claimed by one sender."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("rules.id", ondelete="SET NULL"))
    # the transport that sends it (rulewatch.notifiers.TRANSPORTS): email ...
    channel: Mapped[str] = mapped_column(String(32), default="email", server_default="email")
    kind: Mapped[str] = mapped_column(String(16))  # firing | resolved | reminder | digest ...
    recipients: Mapped[list[Any]]
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    # who holds the claim: a sender claims a whole group under one token
    claim_token: Mapped[str | None] = mapped_column(String(36), index=True)
    # rows of one channel and key go out as one message (the transport's group_key)
    group_key: Mapped[str | None] = mapped_column(String(400))
    # the verify_all_rules tick that wrote it: sent when the tick's alert latch releases
    tick: Mapped[str | None] = mapped_column(String(36), index=True)
    details: Mapped[dict[str, Any] | None]  # what the email says, to list it in a group email

    __table_args__ = (
        Index("ix_notifications_status", "status", "claimed_until"),
        Index("ix_notifications_group", "group_key", "status"),
    )


class TickLatch(Base):
    """One party of a beat tick's alert latch: the tick itself (``party`` = ``tick``), or one
    batch it dispatched (``party`` = the batch's first verification id).

    The tick's grouped alerts are sent once every party has reported; the latch's rows are
    deleted then (`rulewatch.services.alert_latch`).
    """

    __tablename__ = "tick_latches"

    tick: Mapped[str] = mapped_column(String(36), primary_key=True)
    party: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reported_at: Mapped[datetime | None]


class Incident(Base):
    """A period in which a rule failed enough to alert; a row survives its rule."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("rules.id", ondelete="SET NULL"), index=True
    )
    rule_name: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolve_reason: Mapped[str | None] = mapped_column(Text)


class MaintenanceWindow(Base):
    """Planned work: alerts muted and verifications left out of rates while it lasts.

    One-off (``cron`` unset) or recurring (an occurrence of ``duration_s`` at each cron
    time, read in ``timezone``, from ``starts_at`` until ``ends_at``); for every rule, the
    rules with a tag, or one rule. Timing rules: ``rulewatch.domain.maintenance``.
    """

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(8))  # all | rule | tag
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("rules.id", ondelete="CASCADE"), index=True
    )
    tag: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    duration_s: Mapped[int] = mapped_column(Integer)
    cron: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    ends_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """Someone who signs in: a role (viewer, editor, admin) and an argon2id password hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # lower case, see domain.access
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # part of every session's fingerprint: signing out bumps it, ending the user's sessions
    # even where a copy of the cookie lives on
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiToken(Base):
    """A bearer token for scripts, stored as the SHA-256 of its text (shown once, at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters, for listings
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]  # written at most once a minute
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class MonitorGap(Base):
    """A time in which a rule went unverified because the monitor could not run it (database,
    broker or workers down, or too busy): its run for ``started_at`` began at ``ended_at``.
    Shown beside the rule's history; never counted in its stability rate."""

    __tablename__ = "monitor_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]  # the due time that was not verified on time
    ended_at: Mapped[datetime]  # when its run started
    seconds: Mapped[float] = mapped_column(Float)  # ended_at - started_at, summed by /metrics
    reason: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_monitor_gaps_rule_ended", "rule_id", "ended_at"),
        Index("ix_monitor_gaps_ended", "ended_at"),  # retention deletes by age
    )
