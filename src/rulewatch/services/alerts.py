"""Alerting: each recorded verification steps its rule's incident state; events become
outbox rows in the same transaction, sent afterwards by `rulewatch.send_notification`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from rulewatch.config import AlertDefaults
from rulewatch.db import update_many
from rulewatch.domain.incidents import AlertPolicy, Event, IncidentState, close, step
from rulewatch.models import Incident, Notification, Rule, Verification, utcnow
from rulewatch.notifiers import TRANSPORTS
from rulewatch.services.reports import report_environment
from rulewatch.shapes import IncidentOut, answer


@dataclass(frozen=True)
class Outcome:
    """A recorded verification, as alerting needs it."""

    rule_id: int
    rule_name: str
    alert: Mapping[str, Any] | None
    alert_state: Mapping[str, Any] | None
    status: str
    started_at: datetime
    conditions: Sequence[Mapping[str, Any]]
    error: str | None
    # the verify_all_rules tick that dispatched the run: its alerts are grouped per recipient
    tick: str | None = None
    # run inside a maintenance window: the incident state is left as it was, nothing is sent
    in_maintenance: bool = False


def recipients_and_policy(
    alert: Mapping[str, Any] | None, defaults: AlertDefaults
) -> tuple[list[str], AlertPolicy]:
    """The rule's recipients and policy, falling back to the global defaults."""
    source: Mapping[str, Any] = alert if alert is not None else asdict(defaults)
    policy = AlertPolicy(
        failure_threshold=int(source["failure_threshold"]),
        success_threshold=int(source["success_threshold"]),
        send_on_resolved=bool(source["send_on_resolved"]),
        reminder_interval_s=int(source["reminder_interval_s"]),
    )
    return list(source["emails"]), policy


def record_alerts(
    session: Session, outcomes: Sequence[Outcome], defaults: AlertDefaults, base_url: str
) -> list[int]:
    """Step every rule's incident state; write its notifications; return their ids.

    Runs in a maintenance window leave the state as it was: a failure during planned work
    neither opens, reminds nor resolves, and counting resumes where it stood afterwards.
    """
    table: Table = Rule.__table__  # type: ignore[assignment]
    states, rows = [], []
    for outcome in outcomes:
        if outcome.in_maintenance:
            continue
        recipients, policy = recipients_and_policy(outcome.alert, defaults)
        state, events = step(
            _state(outcome.alert_state), outcome.status, outcome.started_at, policy
        )
        stepped = _state_json(state)
        if stepped != outcome.alert_state:  # a passing rule's state mostly stays as it was
            states.append({"id": outcome.rule_id, "alert_state": stepped})
        for event in events:
            _track_incident(session, outcome.rule_id, outcome.rule_name, event)
        for event in events if recipients else ():
            rows += _email_rows(outcome, event, recipients, base_url)
    update_many(session, table, states)
    notifications = [Notification(**row) for row in rows]
    session.add_all(notifications)
    session.flush()
    return [n.id for n in notifications]


def close_incident(
    session: Session, rule: Rule, reason: str, defaults: AlertDefaults, base_url: str
) -> list[int]:
    """Resolve the rule's open incident (it was disabled or is being deleted) and say why."""
    state, events = close(_state(rule.alert_state), utcnow(), reason)
    rule.alert_state = _state_json(state)
    for event in events:
        _track_incident(session, rule.id, rule.name, event)
    recipients, _ = recipients_and_policy(rule.alert, defaults)
    if not events or not recipients:
        return []
    outcome = Outcome(rule.id, rule.name, rule.alert, None, "pass", utcnow(), [], None)
    notifications = [
        Notification(**row)
        for event in events
        for row in _email_rows(outcome, event, recipients, base_url)
    ]
    session.add_all(notifications)
    session.flush()
    return [n.id for n in notifications]


def _track_incident(session: Session, rule_id: int, rule_name: str, event: Event) -> None:
    """An incident row opens with a firing event and closes with a resolved one."""
    if event.kind == "firing":
        session.add(
            Incident(rule_id=rule_id, rule_name=rule_name, opened_at=event.since or event.at)
        )
    elif event.kind == "resolved":
        session.execute(
            update(Incident)
            .where(Incident.rule_id == rule_id, Incident.resolved_at.is_(None))
            .values(resolved_at=event.at, resolve_reason=event.reason or "the rule passes again")
            .execution_options(synchronize_session=False)
        )


def recent_incidents(
    session: Session, limit: int, open_only: bool, rule_id: int | None
) -> list[Incident]:
    """Incidents, newest first; open ones only, or of one rule, when asked."""
    query = select(Incident).order_by(Incident.opened_at.desc(), Incident.id.desc()).limit(limit)
    if open_only:
        query = query.where(Incident.resolved_at.is_(None))
    if rule_id is not None:
        query = query.where(Incident.rule_id == rule_id)
    return list(session.scalars(query))


def failing_reasons(
    session: Session, incidents: Sequence[Incident], now: datetime
) -> dict[int, str | None]:
    """Each incident's last failing verification's error (None once retention took it)."""
    reasons: dict[int, str | None] = {}
    for incident in incidents:
        if incident.rule_id is None:
            reasons[incident.id] = None
            continue
        end = incident.resolved_at or now
        reasons[incident.id] = session.scalar(
            select(Verification.error)
            .where(Verification.rule_id == incident.rule_id, Verification.status == "fail")
            .where(Verification.started_at >= incident.opened_at, Verification.started_at <= end)
            .order_by(Verification.started_at.desc())
            .limit(1)
        )
    return reasons


def incident_to_dict(i: Incident) -> dict[str, Any]:
    """The API form of an incident."""
    return answer(
        IncidentOut, id=i.id, rule_id=i.rule_id, rule_name=i.rule_name,
        state="open" if i.resolved_at is None else "resolved", opened_at=i.opened_at,
        resolved_at=i.resolved_at, resolve_reason=i.resolve_reason,
    )  # fmt: skip


def _email_rows(
    outcome: Outcome, event: Event, recipients: list[str], base_url: str
) -> list[dict[str, Any]]:
    """One row for all recipients; for a scheduled tick's alerts, one row per recipient,
    keyed by the email transport so the tick's alerts to a recipient go as one email once
    the tick's alert latch releases."""
    if outcome.tick is None:
        return [_notification(outcome, event, recipients, base_url)]
    group_key = TRANSPORTS["email"].group_key
    rows = []
    for to in dict.fromkeys(recipients):
        row = _notification(outcome, event, [to], base_url)
        row["group_key"] = group_key(event.kind, outcome.tick, to)
        row["tick"] = outcome.tick if row["group_key"] is not None else None
        rows.append(row)
    return rows


def _notification(
    outcome: Outcome, event: Event, recipients: list[str], base_url: str
) -> dict[str, Any]:
    headline = {"firing": "FIRING", "resolved": "RESOLVED", "reminder": "STILL FIRING",
                "flapping": "FLAPPING"}.get(event.kind, event.kind.upper())  # fmt: skip
    context = {
        "kind": event.kind,
        "headline": headline,
        "rule_name": outcome.rule_name,
        "since": event.since.strftime("%Y-%m-%d %H:%M:%S UTC") if event.since else None,
        "duration": _duration(event.at - event.since) if event.since else None,
        "failing": [c for c in outcome.conditions if not c.get("ok")],
        "error": outcome.error,
        "reason": event.reason,
        "link": f"{base_url}/rules/{outcome.rule_id}",
    }
    env = report_environment()
    return {
        "rule_id": outcome.rule_id,
        "channel": "email",
        "kind": event.kind,
        "recipients": recipients,
        "subject": f"[{headline}] {outcome.rule_name}",
        "body_text": env.get_template("email/alert.txt").render(context),
        "body_html": env.get_template("email/alert.html").render(context),
        "status": "pending",
        "attempts": 0,
        "group_key": None,
        "tick": None,
        "details": context,
    }


def _duration(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _state(data: Mapping[str, Any] | None) -> IncidentState:
    if not data:
        return IncidentState()
    values = dict(data)
    for key, value in values.items():
        if isinstance(value, str) and key.endswith(("_since", "_at")):
            values[key] = datetime.fromisoformat(value)
    values["recent"] = tuple(values.get("recent", ()))
    known = IncidentState.__dataclass_fields__
    return IncidentState(**{k: v for k, v in values.items() if k in known})


def _state_json(state: IncidentState) -> dict[str, Any]:
    data = asdict(state)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
        elif isinstance(value, tuple):
            data[key] = list(value)
    return data
