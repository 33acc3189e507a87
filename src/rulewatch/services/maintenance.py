"""Maintenance windows: stored, listed, and asked which runs they cover.

A verification that runs while a window covers its rule is recorded and shown, marked
``in_maintenance``; it counts in the rollups' maintenance column instead of a rate, and its
rule's incident state is left as it was, so nothing alerts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rulewatch.domain import maintenance as plan
from rulewatch.models import MaintenanceWindow, Rule, RuleTag
from rulewatch.schemas import MaintenanceSpec, validate_maintenance
from rulewatch.shapes import MaintenanceOut, answer

FIELDS = tuple(MaintenanceSpec.model_fields)
# maintenance_windows.id is a 32-bit INTEGER: a larger id fails on SQLite and PostgreSQL
MAX_WINDOW_ID = 2**31 - 1


class MaintenanceNotFound(LookupError):
    """No maintenance window has that id."""


def timing_of(row: MaintenanceWindow) -> plan.MaintenanceWindow:
    """The stored window as the domain sees it."""
    return plan.MaintenanceWindow.of(row)


def maintenance_of(
    session: Session, runs: Sequence[tuple[int, datetime]]
) -> set[tuple[int, datetime]]:
    """The (rule id, time) pairs of ``runs`` that a maintenance window covers.

    Windows are few; they are read once per batch, and tags only when a window needs them.
    """
    if not runs:
        return set()
    windows = [timing_of(w) for w in session.scalars(select(MaintenanceWindow))]
    if not windows:
        return set()
    tags: dict[int, set[str]] = {}
    if any(w.scope == "tag" for w in windows):
        rule_ids = {rule_id for rule_id, _ in runs}
        for rule_id, tag in session.execute(
            select(RuleTag.rule_id, RuleTag.tag).where(RuleTag.rule_id.in_(rule_ids))
        ):
            tags.setdefault(rule_id, set()).add(tag)
    first, last = min(at for _, at in runs), max(at for _, at in runs)
    spans = [(w, _occurrences(w, first, last)) for w in windows]
    return {
        (rule_id, at)
        for rule_id, at in runs
        if any(
            plan.covers(w, rule_id, tags.get(rule_id, set())) and any(a <= at < b for a, b in occ)
            for w, occ in spans
            if occ
        )
    }


def _occurrences(
    window: plan.MaintenanceWindow, first: datetime, last: datetime
) -> list[tuple[datetime, datetime]]:
    """The window's occurrences that meet [first, last]: a batch spans seconds, so one or
    two per window, computed once per batch rather than once per run."""
    found = []
    occurrence = plan.next_occurrence(window, first)
    while occurrence is not None and occurrence[0] <= last:
        found.append(occurrence)
        occurrence = plan.next_occurrence(window, occurrence[1])
    return found


def list_windows(session: Session) -> list[MaintenanceWindow]:
    """Every maintenance window, newest first."""
    query = select(MaintenanceWindow).order_by(MaintenanceWindow.id.desc())
    return list(session.scalars(query))


def get_window(session: Session, window_id: int) -> MaintenanceWindow:
    """The window with this id, or MaintenanceNotFound."""
    row = session.get(MaintenanceWindow, window_id) if 1 <= window_id <= MAX_WINDOW_ID else None
    if row is None:
        raise MaintenanceNotFound(f"no maintenance window has id {window_id}")
    return row


def create_window(session: Session, data: Mapping[str, Any]) -> MaintenanceWindow:
    """Validate and store a new window; raises RuleInvalid naming every bad field."""
    spec = validate_maintenance(data, rule_exists=lambda rid: _rule_exists(session, rid))
    row = MaintenanceWindow(**spec.model_dump())
    session.add(row)
    session.flush()
    return row


def update_window(
    session: Session, row: MaintenanceWindow, changes: Mapping[str, Any]
) -> MaintenanceWindow:
    """Apply a partial change, validated as a whole window; the stored one is kept on error."""
    merged = {**window_spec(row), **changes}
    spec = validate_maintenance(merged, rule_exists=lambda rid: _rule_exists(session, rid))
    for name, value in spec.model_dump().items():
        setattr(row, name, value)
    session.flush()
    return row


def delete_window(session: Session, window_id: int) -> str:
    """Forget a window (runs it covered stay marked); its name."""
    row = get_window(session, window_id)
    session.delete(row)
    return row.name


def window_spec(row: MaintenanceWindow) -> dict[str, Any]:
    """The window as users write it."""
    return {name: getattr(row, name) for name in FIELDS}


def window_to_dict(row: MaintenanceWindow, now: datetime) -> dict[str, Any]:
    """The API form: the definition, whether it is active now, and its current or next run."""
    timing = timing_of(row)
    upcoming = plan.next_occurrence(timing, now)
    return answer(
        MaintenanceOut, id=row.id, **window_spec(row), created_at=row.created_at,
        active=plan.occurrence_at(timing, now) is not None,
        next={"starts_at": upcoming[0], "ends_at": upcoming[1]} if upcoming else None,
    )  # fmt: skip


def _rule_exists(session: Session, rule_id: int) -> bool:
    return session.scalar(select(Rule.id).where(Rule.id == rule_id)) is not None
