"""Stability arithmetic: rates, targets, error budgets, report windows and rollup plans."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Rollups are hourly: a shorter window would still read (and report) whole hours.
MIN_WINDOW = HOUR
MAX_WINDOW = timedelta(days=400)

# [0-9], not \d: int() reads other scripts' digits, which no one means in a URL.
WINDOW_SYNTAX = r"([0-9]+)([mhdw])"  # a number and a unit, like 24h
_WINDOW_RE = re.compile(WINDOW_SYNTAX)
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Counts:
    """Verification outcomes of one rule (or many, pooled) over some span."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    maintenance: int = 0  # run inside a maintenance window: shown, never in the rate

    def __post_init__(self) -> None:
        if min(self.passed, self.failed, self.errors, self.maintenance) < 0:
            raise ValueError(f"counts cannot be negative: {self}")

    def __add__(self, other: Counts) -> Counts:
        """Pool two sets of counts."""
        return Counts(
            self.passed + other.passed,
            self.failed + other.failed,
            self.errors + other.errors,
            self.maintenance + other.maintenance,
        )

    @property
    def judged(self) -> int:
        """Samples that count towards the rate: passes and fails, never errors."""
        return self.passed + self.failed

    @property
    def total(self) -> int:
        """All verifications, errors and those in maintenance included."""
        return self.passed + self.failed + self.errors + self.maintenance


def stability_rate(c: Counts) -> float | None:
    """passed / (passed + failed); None means "no data", never 100%."""
    if c.judged == 0:
        return None
    return c.passed / c.judged


@dataclass(frozen=True)
class RuleStability:
    """One rule's stability over a window, judged against its target."""

    rule_id: int
    name: str
    counts: Counts
    target: float
    rate: float | None
    meets_target: bool | None
    error_budget_left: float | None


def rule_stability(rule_id: int, name: str, counts: Counts, target: float) -> RuleStability:
    """Judge one rule's counts against its target rate (a fraction, e.g. 0.999)."""
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target {target!r} of rule {rule_id} must be between 0 and 1")
    rate = stability_rate(counts)
    meets = None if rate is None else rate >= target
    return RuleStability(
        rule_id, name, counts, target, rate, meets, error_budget_left(counts, target)
    )


def error_budget_left(counts: Counts, target: float) -> float | None:
    """Fraction of allowed failures not yet used; negative when overspent, None if undefined."""
    allowed = (1.0 - target) * counts.judged
    if counts.judged == 0 or allowed <= 0.0:
        return None
    return 1.0 - counts.failed / allowed


@dataclass(frozen=True)
class StabilitySummary:
    """Pooled stability of a group of rules (a tag, or everything)."""

    counts: Counts
    rate: float | None
    rules_total: int
    rules_with_data: int
    rules_meeting_target: int


def summarize(items: Sequence[RuleStability]) -> StabilitySummary:
    """Pool the counts of many rules and count how many have data and meet their target."""
    pooled = sum((item.counts for item in items), Counts())
    return StabilitySummary(
        counts=pooled,
        rate=stability_rate(pooled),
        rules_total=len(items),
        rules_with_data=sum(1 for item in items if item.rate is not None),
        rules_meeting_target=sum(1 for item in items if item.meets_target is True),
    )


def parse_window(text: str) -> timedelta:
    """Read a window like "90m", "24h", "7d" or "2w" (1 hour to 400 days)."""
    match = _WINDOW_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"window {text!r} not understood: use a number and a unit "
            "(m, h, d or w), like 24h or 7d"
        )
    digits = match[1].lstrip("0") or "0"
    # Six digits pass 400d in any unit, and keep int() and timedelta() clear of their limits.
    window = timedelta(seconds=int(digits) * _UNIT_S[match[2]]) if len(digits) <= 6 else None
    if window is None or not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ValueError(
            f"window {text!r} is out of range: use between 1h and 400d "
            "(rollups are hourly, so the smallest window is 1h)"
        )
    return window


@dataclass(frozen=True)
class BucketPlan:
    """Which rollup rows to read: half-open [start, end) ranges of bucket start times."""

    hourly: list[tuple[datetime, datetime]]
    daily: list[tuple[datetime, datetime]]


def plan_buckets(window: timedelta, now: datetime) -> BucketPlan:
    """Split the hours of a window into full UTC days (daily rollups) and leftover hours."""
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")
    now = as_utc(now, "now")
    start = floor_hour(now - window)
    end = floor_hour(now) + HOUR  # the current, partial hour is included
    first_day = ceil_day(start)
    end_of_days = floor_day(end)
    if first_day >= end_of_days:
        return BucketPlan(hourly=[(start, end)], daily=[])
    hourly = [(a, b) for a, b in ((start, first_day), (end_of_days, end)) if a < b]
    return BucketPlan(hourly=hourly, daily=[(first_day, end_of_days)])


def as_utc(value: datetime, name: str) -> datetime:
    """The same instant in UTC; naive datetimes are refused, since their zone is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def floor_hour(value: datetime) -> datetime:
    """The start of the hour containing ``value``."""
    return value.replace(minute=0, second=0, microsecond=0)


def floor_day(value: datetime) -> datetime:
    """The start of the (UTC) day containing ``value``."""
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(value: datetime) -> datetime:
    """``value`` if it starts a day, else the start of the next day."""
    floor = floor_day(value)
    return floor if floor == value else floor + DAY
