"""The parsed form of a condition, and the words, numbers and durations it is written with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext

OPERATORS = ("==", "!=", "<", "<=", ">", ">=")
ORDERING = frozenset({"<", "<=", ">", ">="})
FUNCTIONS = ("len", "has", "pat", "any")

# every placeholder the evaluator can read; each kind of rule offers some of them
PLACEHOLDERS = frozenset(
    {"STATUS", "RESPONSE_TIME", "BODY", "HEADERS", "CONNECTED", "IP", "CERTIFICATE_EXPIRATION",
     "VALUE", "ROWS", "ROW", "PREVIOUS_VALUE", "CHANGE_PERCENT"}
)  # fmt: skip
PATH_PLACEHOLDERS = frozenset({"BODY", "HEADERS", "ROW"})
MILLISECOND_PLACEHOLDERS = frozenset({"RESPONSE_TIME", "CERTIFICATE_EXPIRATION"})
BOOLEAN_PLACEHOLDERS = frozenset({"CONNECTED"})

MS_PER_UNIT = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
# A number followed by letters: meant as a duration, whether or not the unit is one we know.
_DURATION_LIKE = re.compile(r"[+-]?\d+(?:\.\d+)?\s*[^\W\d_]+(?:\s*\d+(?:\.\d+)?\s*[^\W\d_]+)*")


@dataclass(frozen=True)
class Vocabulary:
    """What the conditions of one kind of rule may read, and an example to suggest."""

    kind: str
    placeholders: frozenset[str]
    example: str


ANY_KIND = Vocabulary("any", PLACEHOLDERS, "[STATUS] == 200")


class ConditionSyntaxError(ValueError):
    """A condition that cannot be parsed: what is wrong, where, and what to write instead."""

    def __init__(self, condition: str, position: int, message: str) -> None:
        self.condition = condition
        self.position = position
        self.message = message
        super().__init__(f"{message} at position {position} in condition {condition!r}")

    def __reduce__(self) -> tuple[type[ConditionSyntaxError], tuple[str, int, str]]:
        # Keep the error picklable (Celery results, multiprocessing) despite the custom __init__.
        return (type(self), (self.condition, self.position, self.message))


Step = str | int


@dataclass(frozen=True)
class Placeholder:
    """``[NAME]`` with an optional path such as ``.data.items[0].id`` (``path`` without the dot)."""

    text: str
    name: str
    steps: tuple[Step, ...] = ()
    path: str = ""


@dataclass(frozen=True)
class Call:
    """``len(placeholder)`` or ``has(placeholder)``: a value computed from a placeholder."""

    text: str
    function: str
    argument: Placeholder


@dataclass(frozen=True)
class Literal:
    """A value written in the condition; numbers and durations (in ms) are Decimals."""

    text: str
    value: Decimal | bool | str | None
    duration: bool = False


@dataclass(frozen=True)
class Pattern:
    """``pat(glob)``: matches the other side's text, fnmatch-style and case-sensitive."""

    text: str
    glob: str


@dataclass(frozen=True)
class AnyOf:
    """``any(a, b, ...)``: equal to at least one of the options."""

    text: str
    options: tuple[Literal, ...]


ValueOperand = Placeholder | Call | Literal
Operand = ValueOperand | Pattern | AnyOf


@dataclass(frozen=True)
class Condition:
    """One parsed condition: ``left operator right``; matchers (pat, any) only on the right."""

    text: str
    left: ValueOperand
    operator: str
    right: Operand

    @property
    def placeholders(self) -> frozenset[str]:
        """Names of the placeholders the condition reads, e.g. {"STATUS"}."""
        return frozenset(
            p.name for p in (placeholder_of(self.left), placeholder_of(self.right)) if p
        )


def placeholder_of(operand: Operand) -> Placeholder | None:
    """The placeholder an operand reads, directly or through len()/has(), if any."""
    if isinstance(operand, Placeholder):
        return operand
    return operand.argument if isinstance(operand, Call) else None


def read_number(text: str) -> Decimal | None:
    """``text`` as an exact Decimal when it is written as a plain number, else None."""
    text = text.strip()
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def read_duration(text: str) -> Decimal | None:
    """``text`` such as ``500ms``, ``1.5h`` or ``1h30m`` in exact milliseconds, else None."""
    text = text.strip()
    if not _DURATION.fullmatch(text):
        return None
    with localcontext() as ctx:
        ctx.prec = len(text) + 28  # enough digits that no sum or product is rounded
        parts = _DURATION_PART.findall(text)
        return sum((Decimal(n) * MS_PER_UNIT[unit] for n, unit in parts), Decimal(0))


def looks_like_duration(text: str) -> bool:
    """Whether ``text`` is a number followed by letters, like ``5m`` or the mistaken ``5sec``."""
    return _DURATION_LIKE.fullmatch(text.strip()) is not None


def read_literal(text: str) -> Literal:
    """A literal from the condition: boolean, null, number, duration, or else text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return Literal(text, lowered == "true")
    if lowered == "null":
        return Literal(text, None)
    number = read_number(text)
    if number is not None:
        return Literal(text, number)
    duration = read_duration(text)
    if duration is not None:
        return Literal(text, duration, duration=True)
    return Literal(text, text)
