"""Gatus-style conditions: parsed when a rule is saved, evaluated against each Observation.

A condition is ``LEFT OPERATOR RIGHT``, e.g. ``[STATUS] == 200`` or ``len([BODY].items) > 0``.
Numbers compare exactly (Decimal), durations as milliseconds, anything else as text; a value
that cannot be read fails the condition with the reason, it never becomes 0.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase

from rulewatch.domain.conditions_parse import parse_condition
from rulewatch.domain.conditions_syntax import (
    ANY_KIND,
    AnyOf,
    Condition,
    ConditionSyntaxError,
    Literal,
    Operand,
    Pattern,
    Placeholder,
    ValueOperand,
    Vocabulary,
)
from rulewatch.domain.conditions_values import (
    Known,
    ObservationReader,
    Resolved,
    Unknown,
    as_number,
    as_text,
    shown,
)
from rulewatch.domain.observation import Observation

__all__ = [
    "ANY_KIND",
    "Condition",
    "ConditionOutcome",
    "ConditionSyntaxError",
    "Vocabulary",
    "evaluate",
    "evaluate_all",
    "judge",
    "parse_condition",
]

_ORDER: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class ConditionOutcome:
    """One judged condition: ``resolved`` shows the values seen, ``reason`` why it failed
    (or, with ``ok``, why it could not be judged yet: a history placeholder on a first run)."""

    condition: str
    resolved: str
    ok: bool
    reason: str | None = None


def evaluate(condition: Condition, observation: Observation) -> ConditionOutcome:
    """Judge one condition against one observation."""
    return _evaluate(condition, ObservationReader(observation))


def evaluate_all(
    conditions: Sequence[Condition], observation: Observation
) -> list[ConditionOutcome]:
    """Judge every condition against one observation, reading its body only once."""
    reader = ObservationReader(observation)
    return [_evaluate(condition, reader) for condition in conditions]


def judge(outcomes: Sequence[ConditionOutcome], observation: Observation) -> str:
    """The verification status: ``error``, ``fail`` or ``pass``.

    An unreachable target fails the rule unless a condition asks about ``[CONNECTED]``
    itself: then the conditions decide, so ``[CONNECTED] == false`` can assert a port is shut.
    """
    if observation.fault:
        return "error"
    if observation.failure and not any(_asks_connected(o) for o in outcomes):
        return "fail"
    return "pass" if all(outcome.ok for outcome in outcomes) else "fail"


def _asks_connected(outcome: ConditionOutcome) -> bool:
    return "[CONNECTED]" in outcome.condition.upper()


def _evaluate(condition: Condition, reader: ObservationReader) -> ConditionOutcome:
    left = _resolve(condition.left, reader)
    right = _matcher_or_value(condition.right, reader)
    resolved = f"{_display(condition.left, left)} {condition.operator} "
    resolved += _display(condition.right, right)
    if isinstance(left, Unknown) or isinstance(right, Unknown):  # (narrows both for mypy)
        unknown = [side for side in (left, right) if isinstance(side, Unknown)]
        why = "; ".join(side.reason for side in unknown)
        if all(side.awaiting_history for side in unknown):  # a rule's first run: no history
            return ConditionOutcome(condition.text, resolved, True, f"not judged: {why}")
        return ConditionOutcome(condition.text, resolved, False, why)
    ok, reason = _compare(condition, left, right)
    return ConditionOutcome(condition.text, resolved, ok, reason)


def _matcher_or_value(operand: Operand, reader: ObservationReader) -> Resolved | Pattern | AnyOf:
    return operand if isinstance(operand, Pattern | AnyOf) else _resolve(operand, reader)


def _resolve(operand: ValueOperand, reader: ObservationReader) -> Resolved:
    if isinstance(operand, Literal):
        return Known(operand.value)
    if isinstance(operand, Placeholder):
        return reader.read(operand)
    if operand.function == "has":
        return Known(_has(operand.argument, reader))
    return _length(operand.argument, reader)


def _has(placeholder: Placeholder, reader: ObservationReader) -> bool:
    found = reader.read(placeholder)
    if isinstance(found, Unknown):
        return False
    # Gatus: has([BODY]) asks whether there is a body at all.
    whole_body = placeholder.name == "BODY" and not placeholder.steps
    return not whole_body or bool(as_text(found.value).strip())


def _length(placeholder: Placeholder, reader: ObservationReader) -> Resolved:
    found = reader.read(placeholder)
    if isinstance(found, Unknown):
        return found
    value = found.value
    if placeholder.name == "BODY" and not placeholder.steps:
        # Gatus: len([BODY]) counts the items of a JSON array or object, else characters.
        parsed = reader.body_json()
        if isinstance(parsed, Known) and isinstance(parsed.value, list | dict):
            value = parsed.value
    if isinstance(value, str | list | dict):
        return Known(Decimal(len(value)))
    why = f"len() needs text, a list or an object, but {placeholder.text} is {shown(value)}"
    return Unknown("invalid", why)


def _display(operand: Operand, resolved: Resolved | Pattern | AnyOf) -> str:
    if isinstance(operand, Literal | Pattern | AnyOf):
        return operand.text
    value = resolved.shown if isinstance(resolved, Unknown) else shown(_value_of(resolved))
    return f"{operand.text} ({value})"


def _value_of(resolved: Resolved | Pattern | AnyOf) -> object:
    return resolved.value if isinstance(resolved, Known) else None


def _compare(
    condition: Condition, left: Known, right: Known | Pattern | AnyOf
) -> tuple[bool, str | None]:
    op = condition.operator
    if isinstance(right, Pattern):
        matched = fnmatchcase(as_text(left.value), right.glob)
    elif isinstance(right, AnyOf):
        matched = any(_equal(left.value, option.value) for option in right.options)
    elif op in _ORDER:
        return _order(op, (condition.left, left), (condition.right, right))
    else:
        matched = _equal(left.value, right.value)
    return matched == (op == "=="), None


def _equal(a: object, b: object) -> bool:
    """Numbers (and durations) equal by value, 1.0 == 1; anything else equal as text."""
    number_a, number_b = as_number(a), as_number(b)
    if number_a is not None and number_b is not None:
        return number_a == number_b
    return as_text(a) == as_text(b)


def _order(
    op: str, left: tuple[Operand, Known], right: tuple[Operand, Known]
) -> tuple[bool, str | None]:
    numbers = []
    for operand, known in (left, right):
        number = as_number(known.value)
        if number is None:
            return False, _not_numeric(op, operand, known.value)
        numbers.append(number)
    return _ORDER[op](numbers[0], numbers[1]), None


def _not_numeric(op: str, operand: Operand, value: object) -> str:
    if value is None:
        return f"{operand.text} is null, which {op!r} cannot compare"
    return f"{op!r} compares numbers, but {operand.text} is {shown(value)!r}"
