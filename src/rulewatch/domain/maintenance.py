"""Maintenance windows: when alerts for a rule are muted and its verifications left out.

A window is one-off (``cron`` unset: one occurrence from ``starts_at``) or recurring (each
time of ``cron``, read in ``timezone``, at or after ``starts_at`` and before ``ends_at``
opens an occurrence). Every occurrence lasts ``duration_s``. It covers one rule, every rule
with a tag, or everything. Decisions:

- Occurrences are half-open, ``[start, start + duration)``; every datetime returned is UTC.
- Cron times are those of ``domain/schedule.py`` (its public ``next_due`` finds them): a
  time that spring-forward skips fires at the first valid time after it (02:00 on the
  spring day in Berlin opens at 03:00 CEST); a fixed time of day that fall-back repeats
  fires once, at its first (summer-time) pass; ``*`` in minute or hour fires every real
  hour. Only five-field crons (or macros like ``@daily``) are accepted.
- ``starts_at`` bounds starts: an occurrence whose cron time is before it does not exist,
  not even the part of it after ``starts_at``. ``ends_at`` bounds starts too, not ends: an
  occurrence that starts just before it runs its full duration.
- Occurrences of a recurring window may overlap (a duration longer than the cron period).
  ``occurrence_at`` then returns the one that started last, which also ends last. All
  occurrences are as long, so no walk back is needed: if the last cron time at or before
  ``at`` does not cover it, no earlier one does. Finding that time costs one croniter step
  back (two when it lands on a skipped repeat of a fall-back hour), checked by stepping
  forward with ``next_due``, so both directions agree on what the cron times are.
- ``validate`` refuses a window that could never open: a cron that never fires, or an
  ``ends_at`` with no cron time between ``starts_at`` and it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadDateError, CroniterError

from rulewatch.domain.schedule import Schedule, ScheduleError, next_due
from rulewatch.domain.stability import as_utc

MIN_DURATION_S = 60
MAX_DURATION_S = 31 * 24 * 3600
SCOPES = ("all", "rule", "tag")
# The same tag names rules can carry (see schemas.Tag): a window for any other never matches.
TAG_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_TICK = timedelta(microseconds=1)


class MaintenanceError(ValueError):
    """A maintenance window that cannot be used; the message names the field and what to do.

    ``field`` is the field at fault: the first word of the message.
    """

    @property
    def field(self) -> str:
        """The name of the field at fault."""
        return str(self).split(" ", 1)[0].rstrip(":")


@dataclass(frozen=True)
class MaintenanceWindow:
    """A one-off or recurring period in which the rules it covers are not alerted on."""

    starts_at: datetime
    duration_s: int
    cron: str | None = None
    timezone: str = "UTC"
    ends_at: datetime | None = None
    scope: str = "all"
    rule_id: int | None = None
    tag: str | None = None

    def validate(self) -> None:
        """Raise MaintenanceError naming the first field that is wrong."""
        starts_at = _aware(self.starts_at, "starts_at")
        duration = self.duration_s
        if type(duration) is not int or not MIN_DURATION_S <= duration <= MAX_DURATION_S:
            raise MaintenanceError(
                f"duration_s must be a whole number of seconds between {MIN_DURATION_S} and "
                f"{MAX_DURATION_S} (31 days), got {duration!r}"
            )
        if self.cron is not None:
            _check_cron(self.cron, starts_at)
        _zone(self.timezone)
        _check_ends_at(self, starts_at)
        _check_scope(self)

    @classmethod
    def of(cls, source: object) -> MaintenanceWindow:
        """The timing and scope of anything with these fields: a stored row, a request."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})

    @property
    def is_recurring(self) -> bool:
        """True when a cron expression opens an occurrence at each of its times."""
        return self.cron is not None


def occurrence_at(window: MaintenanceWindow, at: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence [start, end) that covers ``at``, or None.

    When occurrences overlap, the one that started last (and so ends last) is returned.
    """
    window.validate()
    return _occurrence_at(window, as_utc(at, "at"))


def next_occurrence(window: MaintenanceWindow, at: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence covering ``at``, else the next one to start after ``at``, else None (over)."""
    window.validate()
    at = as_utc(at, "at")
    current = _occurrence_at(window, at)
    if current is not None:
        return current
    starts_at = as_utc(window.starts_at, "starts_at")
    if window.cron is None:
        return _span(window, starts_at) if at < starts_at else None
    start = _fire_after(window, max(at, starts_at - _TICK))
    if window.ends_at is not None and start >= as_utc(window.ends_at, "ends_at"):
        return None
    return _span(window, start)


def covers(window: MaintenanceWindow, rule_id: int, tags: Collection[str]) -> bool:
    """Whether the window's scope includes this rule (with these tags)."""
    window.validate()
    return _covers(window, rule_id, _tag_names(tags))


def in_maintenance(
    windows: Iterable[MaintenanceWindow], rule_id: int, tags: Collection[str], at: datetime
) -> bool:
    """Whether any window covering the rule has an occurrence active at ``at``."""
    at = as_utc(at, "at")
    names = _tag_names(tags)
    for window in windows:
        window.validate()
        if _covers(window, rule_id, names) and _occurrence_at(window, at) is not None:
            return True
    return False


def _occurrence_at(window: MaintenanceWindow, at: datetime) -> tuple[datetime, datetime] | None:
    starts_at = as_utc(window.starts_at, "starts_at")
    if window.cron is None:
        start: datetime | None = starts_at
    else:
        before = at + _TICK  # cron times strictly before this are those at or before ``at``
        if window.ends_at is not None:
            before = min(before, as_utc(window.ends_at, "ends_at"))
        start = _last_fire_before(window, before)
    if start is None or not start <= at < start + timedelta(seconds=window.duration_s):
        return None
    return _span(window, start)


def _last_fire_before(window: MaintenanceWindow, before: datetime) -> datetime | None:
    """The last cron time at or after starts_at and strictly before ``before``.

    croniter's get_prev only gives a hint; stepping forward from it with next_due decides,
    so fall-back repeats are skipped exactly as schedule.py skips them. Each round moves
    ``anchor`` back to an earlier cron time; the loop ends at starts_at at the latest.
    """
    floor = as_utc(window.starts_at, "starts_at")
    zone = _zone(window.timezone)
    anchor = before
    while anchor > floor:
        try:
            hint = croniter(window.cron or "", anchor.astimezone(zone)).get_prev(datetime)
        except CroniterBadDateError:  # nothing earlier within croniter's search range
            return None
        hint = min(hint.astimezone(UTC), anchor - _TICK)
        last = None
        fire = _fire_after(window, max(hint, floor) - _TICK)
        while fire < before:
            last, fire = fire, _fire_after(window, fire)
        if last is not None:
            return last
        anchor = hint
    return None


def _fire_after(window: MaintenanceWindow, after: datetime) -> datetime:
    """The first cron time strictly after ``after``, as schedule.py computes it."""
    schedule = Schedule(cron=window.cron, timezone=window.timezone)
    try:
        return next_due(schedule, after, after)
    except ScheduleError as exc:
        raise MaintenanceError(f"cron {window.cron!r}: {exc}") from None


def _span(window: MaintenanceWindow, start: datetime) -> tuple[datetime, datetime]:
    return start, start + timedelta(seconds=window.duration_s)


def _covers(window: MaintenanceWindow, rule_id: int, tags: frozenset[str]) -> bool:
    if window.scope == "rule":
        return window.rule_id == rule_id
    if window.scope == "tag":
        return window.tag in tags
    return True


def _tag_names(tags: Collection[str]) -> frozenset[str]:
    if isinstance(tags, str):  # "db" in "prod-db" would match a substring
        raise TypeError(f"tags must be a collection of tag names, not one string: {tags!r}")
    return frozenset(tags)


def _aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise MaintenanceError(f"{name} must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise MaintenanceError(
            f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}"
        )
    return value.astimezone(UTC)


def _check_cron(cron: object, starts_at: datetime) -> None:
    hint = "use five fields: minute hour day-of-month month day-of-week"
    if not isinstance(cron, str):
        raise MaintenanceError(f"cron must be a cron expression or None, got {cron!r}")
    try:
        fires = croniter(cron, starts_at)
    except (CroniterError, ValueError, KeyError) as exc:
        raise MaintenanceError(f"cron {cron!r} is not valid: {exc}; {hint}") from None
    if len(fires.expanded) != 5:
        raise MaintenanceError(f"cron {cron!r} is not valid: it has seconds or years; {hint}")
    try:
        fires.get_next(datetime)
    except CroniterBadDateError:
        raise MaintenanceError(
            f"cron {cron!r} is not valid: it never fires, so the window would never open"
        ) from None


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise MaintenanceError(
            f"timezone {timezone!r} is unknown: use an IANA name like Europe/Berlin"
        ) from None


def _check_ends_at(window: MaintenanceWindow, starts_at: datetime) -> None:
    if window.ends_at is None:
        return
    if window.cron is None:
        raise MaintenanceError(
            "ends_at is for recurring windows only: a one-off window ends duration_s after "
            "starts_at; leave ends_at empty or give a cron"
        )
    ends_at = _aware(window.ends_at, "ends_at")
    if ends_at <= starts_at:
        raise MaintenanceError(
            f"ends_at must be after starts_at, got ends_at {ends_at.isoformat()} and "
            f"starts_at {starts_at.isoformat()}"
        )
    if _fire_after(window, starts_at - _TICK) >= ends_at:
        raise MaintenanceError(
            f"ends_at leaves no time of cron {window.cron!r} between starts_at and ends_at, "
            "so the window would never open: move ends_at later"
        )


def _check_scope(window: MaintenanceWindow) -> None:
    scope, rule_id, tag = window.scope, window.rule_id, window.tag
    if scope not in SCOPES:
        raise MaintenanceError(f"scope must be 'all', 'rule' or 'tag', got {scope!r}")
    if scope == "rule":
        if type(rule_id) is not int or rule_id < 1:
            raise MaintenanceError(
                f"rule_id is needed for scope 'rule': the id of a rule (a whole number >= 1), "
                f"got {rule_id!r}"
            )
    elif rule_id is not None:
        raise MaintenanceError(f"rule_id is only for scope 'rule', not {scope!r}: leave it empty")
    if scope == "tag":
        if not isinstance(tag, str) or TAG_RE.fullmatch(tag) is None:
            raise MaintenanceError(
                "tag is needed for scope 'tag': a tag name of 1 to 64 letters, digits or _ . : -, "
                f"got {tag!r}"
            )
    elif tag is not None:
        raise MaintenanceError(f"tag is only for scope 'tag', not {scope!r}: leave it empty")
