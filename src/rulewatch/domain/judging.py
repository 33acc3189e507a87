"""Judging one observation against a rule's conditions: the status and what to record.

Pure: the verification service gives the parsed conditions, the observation a probe made
and the recent values of the rule, and stores what comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from rulewatch.domain.conditions import Condition, ConditionOutcome, evaluate_all, judge
from rulewatch.domain.observation import Observation

HISTORY_PLACEHOLDERS = frozenset({"PREVIOUS_VALUE", "CHANGE_PERCENT"})


def needs_history(conditions: Sequence[Condition]) -> bool:
    """True when a condition reads earlier values, which are then worth loading."""
    return any(c.placeholders & HISTORY_PLACEHOLDERS for c in conditions)


def with_history(observation: Observation, history: Sequence[Any]) -> Observation:
    """The observation with the latest earlier value and the average of the numeric ones."""
    if not history:
        return observation
    numbers = [n for n in (_decimal(v) for v in history) if n is not None]
    average = float(sum(numbers) / len(numbers)) if numbers else None
    return replace(observation, previous_value=history[0], recent_average=average)


def judged(conditions: Sequence[Condition], obs: Observation) -> dict[str, Any]:
    """The status, each condition's outcome, what was measured, and the error to show."""
    try:
        outcomes = evaluate_all(conditions, obs)
        status = judge(outcomes, obs)
    except Exception as exc:  # an evaluator bug is recorded as this rule's error, not the batch's
        outcomes, status = [], "error"
        obs = replace(obs, fault=f"conditions could not be evaluated: {exc!r}")
    error = None if status == "pass" else obs.fault or obs.failure or first_reason(outcomes)
    return {
        "status": status,
        "conditions": [outcome_dict(o) for o in outcomes],
        "measured": obs.measured(),
        "error": error,
    }


def outcome_dict(o: ConditionOutcome) -> dict[str, Any]:
    """The stored form of one condition's outcome; ``reason`` only when there is one."""
    out: dict[str, Any] = {"condition": o.condition, "resolved": o.resolved, "ok": o.ok}
    if o.reason:
        out["reason"] = o.reason
    return out


def first_reason(outcomes: Sequence[ConditionOutcome]) -> str | None:
    """Why the first unmet condition failed, to show as the verification's error."""
    return next(
        (o.reason or f"condition not met: {o.resolved}" for o in outcomes if not o.ok), None
    )


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
