"""Schedule arithmetic: when a rule is first due, when it is due next, how late it ran."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadDateError, CroniterError

MIN_INTERVAL_S = 1
# A run this late, that skipped a later due time or outlived what a crashed worker may take
# (timeout_s + 30 s), leaves a gap in the monitor (see leaves_gap).
GAP_MIN_LATE_S = 10.0
GAP_BEYOND_TIMEOUT_S = 30.0
MAX_INTERVAL_S = 31 * 24 * 3600

# Fibonacci hashing: 2**64 / golden ratio, odd. Consecutive keys land evenly spread.
_GOLDEN_64 = 0x9E3779B97F4A7C15
_MASK_64 = (1 << 64) - 1
# Macros whose hour field is a wildcard; every other macro fires at a fixed time of day.
_WILDCARD_MACROS = {"@hourly"}
# validate() must not read the clock; any fixed instant shows whether a cron ever fires.
_VALIDATION_START = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names the field and what to do."""


@dataclass(frozen=True)
class Schedule:
    """Every ``interval_s`` seconds, or at the times of a ``cron`` expression in ``timezone``."""

    interval_s: int | None = None
    cron: str | None = None
    timezone: str = "UTC"

    def validate(self) -> None:
        """Raise ScheduleError naming the first field that is wrong."""
        if (self.interval_s is None) == (self.cron is None):
            raise ScheduleError("give exactly one of interval_s or cron")
        _zone(self)
        if self.cron is not None:
            _next_fire(self, _VALIDATION_START)
        else:
            _interval(self)


def first_due(schedule: Schedule, rule_key: int, now: datetime) -> datetime:
    """When a new rule is first due: interval rules are spread over one interval by key."""
    now = _as_utc(now, "now")
    if schedule.cron is not None:
        return _next_fire(schedule, now)
    interval = _interval(schedule)
    return now + timedelta(seconds=spread_offset(rule_key, interval))


def spread_offset(rule_key: int, interval_s: int) -> int:
    """A stable offset in [0, interval_s) seconds, uniform over consecutive keys."""
    hashed = ((rule_key & _MASK_64) * _GOLDEN_64) & _MASK_64
    return (hashed * interval_s) >> 64


def next_due(schedule: Schedule, previous_due: datetime, now: datetime) -> datetime:
    """The next slot after ``now`` on the rule's own grid; missed slots are skipped."""
    previous_due = _as_utc(previous_due, "previous_due")
    now = _as_utc(now, "now")
    if schedule.cron is not None:
        return _next_fire(schedule, max(previous_due, now))
    step = timedelta(seconds=_interval(schedule))
    steps = 1 if now < previous_due else (now - previous_due) // step + 1
    return previous_due + steps * step


def lateness_s(due: datetime, started: datetime) -> float:
    """Seconds a run started after it was due; 0.0 when on time or early."""
    late = _as_utc(started, "started") - _as_utc(due, "due")
    return max(0.0, late.total_seconds())


def leaves_gap(schedule: Schedule, due: datetime, started: datetime, timeout_s: float) -> bool:
    """True when a run due at ``due`` that started at ``started`` shows the monitor could not
    run the rule: at least GAP_MIN_LATE_S late, and either a later due time passed meanwhile
    (it is skipped, not replayed: a sample is missing) or it is later than a crashed
    worker's runs may be (``timeout_s`` + GAP_BEYOND_TIMEOUT_S)."""
    late = lateness_s(due, started)
    if late < GAP_MIN_LATE_S:
        return False
    return late > timeout_s + GAP_BEYOND_TIMEOUT_S or next_due(schedule, due, due) <= started


def _next_fire(schedule: Schedule, after: datetime) -> datetime:
    """The first cron time strictly after ``after``, skipping repeats of a fall-back hour."""
    zone = _zone(schedule)
    fires = _cron_iter(schedule, after.astimezone(zone))
    skip_repeats = _is_fixed_time(schedule)
    while True:
        try:
            fire: datetime = fires.get_next(datetime).astimezone(zone)
        except CroniterBadDateError:
            raise ScheduleError(f"cron {schedule.cron!r} is not valid: it never fires") from None
        if not (skip_repeats and _is_repeated_wall_time(fire)):
            return fire.astimezone(UTC)


def _is_fixed_time(schedule: Schedule) -> bool:
    """Like Vixie cron: a job with no '*' in its minute or hour runs once per wall time."""
    expr = (schedule.cron or "").strip()
    if expr.startswith("@"):
        return expr.lower() not in _WILDCARD_MACROS
    minute, hour = expr.split()[:2]
    return not (minute.startswith("*") or hour.startswith("*"))


def _is_repeated_wall_time(local: datetime) -> bool:
    """True for the second occurrence of a wall time that a DST fall-back repeats."""
    other = local.replace(fold=1 - local.fold)
    return local.fold == 1 and other.utcoffset() != local.utcoffset()


def _interval(schedule: Schedule) -> int:
    value = schedule.interval_s
    if type(value) is not int or not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise ScheduleError(
            f"interval_s must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S} seconds, "
            f"got {value!r}"
        )
    return value


def _zone(schedule: Schedule) -> ZoneInfo:
    try:
        return ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(
            f"timezone {schedule.timezone!r} is unknown: use an IANA name like Europe/Berlin"
        ) from None


def _cron_iter(schedule: Schedule, start: datetime) -> croniter:
    try:
        return croniter(schedule.cron or "", start)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(
            f"cron {schedule.cron!r} is not valid: {exc}; "
            "use five fields: minute hour day-of-month month day-of-week"
        ) from None


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)
