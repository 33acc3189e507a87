"""The incident state machine: when a rule's alerts fire, remind, resolve, or flag flapping.

``step`` is a pure function of (previous state, new status, now, policy). Decisions:

- ``error`` verifications are rulewatch's own fault, not the target's: they neither open nor
  resolve an incident, leave both counters (and the start of a run of fails) as they were,
  and are left out of the flapping window. A reminder that falls due on one is still sent:
  the incident is still open.
- An incident opens on the fail that brings the run to ``failure_threshold`` (the first fail
  when it is 1); its ``since`` is the first fail of the run. A pass ends the run. Comparisons
  are ``>=``, so lowering a threshold below the current run opens on the next fail.
- It resolves on the pass that brings the run of passes to ``success_threshold``; a fail
  ends that run. With ``send_on_resolved`` off it resolves without an event.
- A reminder is due once ``reminder_interval_s`` have passed since the last firing or
  reminder, exactly at the interval included; after a long gap one reminder is sent, not
  one per missed interval.
- Flapping (at least ``flap_threshold`` status changes among the last ``flap_window``
  judged statuses) is announced once per flapping period, when no incident is open after
  the step (so it may follow a ``resolved`` in the same step). It never mutes incidents: a
  run of fails long enough to alert is always worth a firing. The period ends when the
  window holds no change at all; ending it at the threshold instead would re-announce a rule
  whose changes hover around it every other step.
- A clock that goes backwards never crashes: ``since`` is never after ``at``, and reminders
  are measured from the earlier time, so they wait one interval on the new clock.
- ``close`` (rule disabled or deleted) always emits ``resolved`` for an open incident,
  whatever ``send_on_resolved`` says: it tells people the rule is no longer watched, news
  they would otherwise wait for forever. The reason says so. The state starts afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal

from rulewatch.domain.stability import as_utc

EventKind = Literal["firing", "resolved", "reminder", "flapping"]
STATUSES = ("pass", "fail", "error")
JUDGED = ("pass", "fail")
MIN_REMINDER_S = 60
# ``recent`` is stored with the rule and rewritten on every verification: keep it small.
MAX_FLAP_WINDOW = 100


class AlertPolicyError(ValueError):
    """An alert policy that cannot be used; the message names the field and what to do."""


@dataclass(frozen=True)
class AlertPolicy:
    """When a rule's incidents open, resolve and remind, and when it counts as flapping."""

    failure_threshold: int = 3
    success_threshold: int = 2
    send_on_resolved: bool = True
    reminder_interval_s: int = 0
    flap_window: int = 10
    flap_threshold: int = 5

    def validate(self) -> None:
        """Raise AlertPolicyError naming the first field that is wrong."""
        _check_count("failure_threshold", self.failure_threshold, 1)
        _check_count("success_threshold", self.success_threshold, 1)
        if type(self.send_on_resolved) is not bool:
            raise AlertPolicyError(
                f"send_on_resolved must be true or false, got {self.send_on_resolved!r}"
            )
        _check_reminder(self.reminder_interval_s)
        _check_count("flap_window", self.flap_window, 2, MAX_FLAP_WINDOW)
        _check_count(
            "flap_threshold",
            self.flap_threshold,
            1,
            self.flap_window - 1,
            f" ({self.flap_window} statuses hold at most {self.flap_window - 1} changes)",
        )


@dataclass(frozen=True)
class IncidentState:
    """A rule's alerting memory between verifications, stored with the rule."""

    consecutive_failures: int = 0
    consecutive_passes: int = 0
    open_since: datetime | None = None
    # The last firing or reminder of the open incident; None when none is open.
    last_notified_at: datetime | None = None
    recent: tuple[str, ...] = ()  # the last flap_window judged statuses, newest last
    flapping: bool = False  # this flapping period has been announced
    failing_since: datetime | None = None  # first fail of the current run of fails

    def __post_init__(self) -> None:
        if min(self.consecutive_failures, self.consecutive_passes) < 0:
            raise ValueError(f"incident counters cannot be negative: {self}")
        for name in ("open_since", "last_notified_at", "failing_since"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise TypeError(
                    f"IncidentState.{name} must be a datetime or None, got {value!r}: "
                    "parse stored times before building the state"
                )
        if any(status not in JUDGED for status in self.recent):
            raise ValueError(f"IncidentState.recent holds only pass and fail, got {self.recent}")

    @property
    def is_open(self) -> bool:
        """True while an incident is open."""
        return self.open_since is not None


@dataclass(frozen=True)
class Event:
    """Something to notify: an incident fired, is still open or resolved, or a rule flaps."""

    kind: EventKind
    at: datetime
    since: datetime | None
    reason: str | None = None


def step(
    state: IncidentState, status: str, now: datetime, policy: AlertPolicy
) -> tuple[IncidentState, list[Event]]:
    """Apply one verification's status; return the new state and the events to notify."""
    policy.validate()
    now = as_utc(now, "now")
    if status not in STATUSES:
        raise ValueError(f"status must be one of pass, fail or error, got {status!r}")
    events: list[Event] = []
    if status == "fail":
        state, events = _on_fail(state, now, policy)
    elif status == "pass":
        state, events = _on_pass(state, now, policy)
    state, reminders = _remind(state, now, policy)
    state, flaps = _watch_flapping(state, status, now, policy)
    return state, events + reminders + flaps


def close(state: IncidentState, now: datetime, reason: str) -> tuple[IncidentState, list[Event]]:
    """End a rule's alerting (disabled, deleted): resolve an open incident with the reason."""
    now = as_utc(now, "now")
    if not reason.strip():
        raise ValueError("reason must say why the incident closed, e.g. 'rule disabled'")
    if state.open_since is None:
        return IncidentState(), []
    return IncidentState(), [Event("resolved", now, min(state.open_since, now), reason)]


def status_changes(statuses: Sequence[str]) -> int:
    """How many times the status changed from one verification to the next."""
    return sum(1 for before, after in pairwise(statuses) if before != after)


def _on_fail(
    state: IncidentState, now: datetime, policy: AlertPolicy
) -> tuple[IncidentState, list[Event]]:
    running = state.failing_since if state.consecutive_failures > 0 else None
    since = min(running or now, now)
    state = replace(
        state,
        consecutive_failures=state.consecutive_failures + 1,
        consecutive_passes=0,
        failing_since=since,
    )
    if state.is_open or state.consecutive_failures < policy.failure_threshold:
        return state, []
    return replace(state, open_since=since, last_notified_at=now), [Event("firing", now, since)]


def _on_pass(
    state: IncidentState, now: datetime, policy: AlertPolicy
) -> tuple[IncidentState, list[Event]]:
    state = replace(
        state,
        consecutive_passes=state.consecutive_passes + 1,
        consecutive_failures=0,
        failing_since=None,
    )
    if state.open_since is None or state.consecutive_passes < policy.success_threshold:
        return state, []
    resolved = Event("resolved", now, min(state.open_since, now))
    state = replace(state, open_since=None, last_notified_at=None)
    return state, [resolved] if policy.send_on_resolved else []


def _remind(
    state: IncidentState, now: datetime, policy: AlertPolicy
) -> tuple[IncidentState, list[Event]]:
    if state.open_since is None or policy.reminder_interval_s == 0:
        return state, []
    last = state.last_notified_at or state.open_since
    if now < last:  # the clock went backwards: measure from now, not from the future
        return replace(state, last_notified_at=now), []
    if now - last < timedelta(seconds=policy.reminder_interval_s):
        return state, []
    reminder = Event("reminder", now, min(state.open_since, now))
    return replace(state, last_notified_at=now), [reminder]


def _watch_flapping(
    state: IncidentState, status: str, now: datetime, policy: AlertPolicy
) -> tuple[IncidentState, list[Event]]:
    if status not in JUDGED:
        return state, []
    recent = (*state.recent, status)[-policy.flap_window :]
    changes = status_changes(recent)
    if changes == 0:
        return replace(state, recent=recent, flapping=False), []
    if state.flapping or state.is_open or changes < policy.flap_threshold:
        return replace(state, recent=recent), []
    reason = f"status changed {changes} times in the last {len(recent)} verifications"
    return replace(state, recent=recent, flapping=True), [Event("flapping", now, None, reason)]


def _check_count(name: str, value: int, low: int, high: int | None = None, why: str = "") -> None:
    if type(value) is int and value >= low and (high is None or value <= high):
        return
    allowed = f"at least {low}" if high is None else f"between {low} and {high}"
    raise AlertPolicyError(f"{name} must be a whole number {allowed}{why}, got {value!r}")


def _check_reminder(value: int) -> None:
    if type(value) is int and (value == 0 or value >= MIN_REMINDER_S):
        return
    raise AlertPolicyError(
        f"reminder_interval_s must be 0 (no reminders) or at least {MIN_REMINDER_S} seconds, "
        f"got {value!r}"
    )
