"""Creating, changing, listing, importing and exporting rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from rulewatch.config import AlertDefaults
from rulewatch.domain.schedule import first_due
from rulewatch.models import Rule, RuleTag
from rulewatch.schemas import FieldError, RuleInvalid, RuleSpec, validate_rule
from rulewatch.services.alerts import close_incident
from rulewatch.shapes import RuleOut, answer

# rules.id is a 32-bit INTEGER: PostgreSQL and SQLite fail on a larger id instead of finding none
MAX_RULE_ID = 2**31 - 1
RULE_STATUSES = ("pass", "fail", "error", "paused", "nodata")
SCHEDULE_FIELDS = ("interval_s", "cron")
SPEC_FIELDS = (
    "name", "kind", "target", "conditions", "interval_s", "cron", "timezone", "enabled",
    "stability_target", "alert",
)  # fmt: skip


class RuleNotFound(LookupError):
    """No rule has that id or name."""


def spec_of(rule: Rule) -> dict[str, Any]:
    """The rule's definition in the schema users write (the export form)."""
    data = {name: getattr(rule, name) for name in SPEC_FIELDS}
    data["tags"] = rule.tag_names
    return data


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The API form: definition plus id and state."""
    return answer(
        RuleOut, id=rule.id, **spec_of(rule), last_status=rule.last_status,
        last_verified_at=rule.last_verified_at, next_due_at=rule.next_due_at,
        created_at=rule.created_at, updated_at=rule.updated_at,
    )  # fmt: skip


def create_rule(session: Session, data: Mapping[str, Any], now: datetime) -> Rule:
    """Validate and store a new rule; its first run is spread over its interval."""
    spec = validate_rule(data)
    _ensure_name_free(session, spec.name, None)
    rule = Rule(next_due_at=now, created_at=now, updated_at=now)
    _apply(rule, spec)
    session.add(rule)
    session.flush()
    rule.next_due_at = first_due(spec.schedule, rule.id, now)
    return rule


def update_rule(session: Session, rule: Rule, changes: Mapping[str, Any], now: datetime) -> Rule:
    """Apply a partial change; the whole resulting rule is validated before anything is stored."""
    spec = validate_rule({**spec_of(rule), **switch_schedule(changes)})
    _ensure_name_free(session, spec.name, rule.id)
    schedule_changed = (rule.interval_s, rule.cron, rule.timezone) != (
        spec.interval_s, spec.cron, spec.timezone,
    )  # fmt: skip
    _apply(rule, spec)
    rule.updated_at = now
    if schedule_changed:
        rule.next_due_at = first_due(spec.schedule, rule.id, now)
        # a claim holds the rule until it expires; the new schedule must not wait for that
        rule.claimed_until = rule.claim_token = None
    return rule


def change_rule(
    session: Session,
    rule: Rule,
    changes: Mapping[str, Any],
    now: datetime,
    alerts: AlertDefaults,
    base_url: str,
) -> None:
    """update_rule, and a rule disabled with an open incident resolves it (and says so)."""
    was_enabled = rule.enabled
    update_rule(session, rule, changes, now)
    if was_enabled and not rule.enabled:
        close_incident(session, rule, "the rule was disabled", alerts, base_url)


def remove_rule(session: Session, rule: Rule, alerts: AlertDefaults, base_url: str) -> None:
    """Delete a rule and its history; an open incident is resolved first (and says so)."""
    close_incident(session, rule, "the rule was deleted", alerts, base_url)
    session.delete(rule)


def switch_schedule(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A change that sets only one of interval_s and cron also clears the other."""
    out = dict(changes)
    given = [f for f in SCHEDULE_FIELDS if out.get(f) is not None]
    if len(given) == 1:
        other = next(f for f in SCHEDULE_FIELDS if f != given[0])
        out.setdefault(other, None)
    return out


def get_rule(session: Session, key: int | str) -> Rule:
    """A rule by id, or by name when ``key`` is not a number."""
    rule_id = _as_rule_id(key)
    rule = session.get(Rule, rule_id) if rule_id is not None else None
    if rule is None and isinstance(key, str):
        rule = session.scalar(select(Rule).where(Rule.name == key))
    if rule is None:
        raise RuleNotFound(f"no rule with id or name {key!r}")
    return rule


def _as_rule_id(key: int | str) -> int | None:
    """``key`` as an id that can exist, or None: ASCII digits only, within the id column."""
    if isinstance(key, str):
        digits = key.lstrip("0") or "0"
        if not (key.isascii() and key.isdecimal() and len(digits) <= 10):
            return None
        key = int(digits)
    return key if 1 <= key <= MAX_RULE_ID else None


def list_rules(
    session: Session,
    tag: str | None = None,
    limit: int = 100,
    offset: int = 0,
    *,
    status: str | None = None,
    name_contains: str | None = None,
    failing_first: bool = False,
) -> tuple[list[Rule], int]:
    """A page of rules ordered by name, and the total count, optionally filtered.

    ``status``: pass, fail or error (enabled rules whose last verification had it), paused
    (disabled) or nodata (enabled, never verified). ``name_contains`` ignores case.
    ``failing_first``: failing rules, then erroring, never verified, passing, paused.
    """
    query = select(Rule)
    if tag:
        query = query.where(Rule.id.in_(select(RuleTag.rule_id).where(RuleTag.tag == tag)))
    if status is not None:
        query = query.where(_status_filter(status))
    if name_contains:
        query = query.where(func.lower(Rule.name).contains(name_contains.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (_attention(), Rule.name) if failing_first else (Rule.name,)
    rules = session.scalars(query.order_by(*order).limit(limit).offset(offset)).all()
    return list(rules), total


def rule_status(rule: Rule) -> str:
    """What a badge shows: pass, fail, error, paused (disabled) or nodata (never verified)."""
    if not rule.enabled:
        return "paused"
    return rule.last_status or "nodata"


def _attention() -> ColumnElement[int]:
    """Rank for "failing first": what needs a look comes before what is fine or paused."""
    return case(
        (Rule.enabled.is_(False), 4),
        (Rule.last_status == "fail", 0),
        (Rule.last_status == "error", 1),
        (Rule.last_status.is_(None), 2),
        else_=3,
    )


def tag_in_use(session: Session, tag: str) -> bool:
    """True when some rule has ``tag``."""
    return session.scalar(select(RuleTag.tag).where(RuleTag.tag == tag).limit(1)) is not None


def any_rule(session: Session) -> bool:
    """True when at least one rule exists (an empty install shows how to start)."""
    return session.scalar(select(Rule.id).limit(1)) is not None


def rule_names(session: Session, rule_ids: Iterable[int]) -> dict[int, str]:
    """The names of these rules by id (rules since deleted are left out)."""
    named = session.execute(select(Rule.id, Rule.name).where(Rule.id.in_(list(rule_ids))))
    return {rule_id: name for rule_id, name in named}


def enabled_rule_ids(session: Session) -> list[int]:
    """The ids of every enabled rule."""
    return list(session.scalars(select(Rule.id).where(Rule.enabled.is_(True))))


def all_tags(session: Session) -> list[str]:
    """Every tag in use, sorted."""
    return list(session.scalars(select(RuleTag.tag).distinct().order_by(RuleTag.tag)))


def _status_filter(status: str) -> ColumnElement[bool]:
    if status not in RULE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RULE_STATUSES)}")
    if status == "paused":
        return Rule.enabled.is_(False)
    if status == "nodata":
        return and_(Rule.enabled.is_(True), Rule.last_status.is_(None))
    return and_(Rule.enabled.is_(True), Rule.last_status == status)


def export_rules(session: Session) -> list[dict[str, Any]]:
    """Every rule's definition, ordered by name."""
    return [spec_of(r) for r in session.scalars(select(Rule).order_by(Rule.name))]


def _apply(rule: Rule, spec: RuleSpec) -> None:
    for name in SPEC_FIELDS[:-1]:  # all but alert, which is stored as plain JSON
        setattr(rule, name, getattr(spec, name))
    rule.alert = None if spec.alert is None else spec.alert.model_dump()
    _set_tags(rule, spec.tags)


def _set_tags(rule: Rule, tags: Iterable[str]) -> None:
    current = {t.tag: t for t in rule.tags}
    rule.tags = [current.get(t) or RuleTag(tag=t) for t in sorted(set(tags))]


def _ensure_name_free(session: Session, name: str, own_id: int | None) -> None:
    other = session.scalar(select(Rule.id).where(Rule.name == name))
    if other is not None and other != own_id:
        raise RuleInvalid(
            [FieldError("name", f"a rule named {name!r} exists already (id {other})")]
        )
