"""Parse a condition's text, or say exactly what is wrong with it, where, and what to write."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NoReturn

from rulewatch.domain.conditions_syntax import (
    ANY_KIND,
    BOOLEAN_PLACEHOLDERS,
    FUNCTIONS,
    MILLISECOND_PLACEHOLDERS,
    OPERATORS,
    ORDERING,
    PATH_PLACEHOLDERS,
    PLACEHOLDERS,
    AnyOf,
    Call,
    Condition,
    ConditionSyntaxError,
    Literal,
    Operand,
    Pattern,
    Placeholder,
    Step,
    ValueOperand,
    Vocabulary,
    looks_like_duration,
    placeholder_of,
    read_literal,
)

_OPERATOR_CHARS = "=!<>"
_FUNCTION = re.compile(r"([A-Za-z_]\w*)\(")
_INDEX = re.compile(r"[0-9]+")
_SUGGESTIONS = {"=": "==", "===": "==", "=<": "<=", "=>": ">=", "<>": "!=", "!": "!=", "=!": "!="}
_NEEDS_PATH = {
    "HEADERS": "[HEADERS] needs one header name, e.g. [HEADERS].Content-Type",
    "ROW": "[ROW] needs a column name, e.g. [ROW].total",
}


def parse_condition(text: str, vocabulary: Vocabulary = ANY_KIND) -> Condition:
    """Parse ``LEFT OPERATOR RIGHT``, refusing placeholders the kind's ``vocabulary`` lacks."""
    return _Parser(text, vocabulary).condition()


class _Parser:
    def __init__(self, text: str, vocabulary: Vocabulary) -> None:
        self.text = text
        self.kind = vocabulary.kind
        self.allowed = vocabulary.placeholders
        self._example = vocabulary.example
        self.closers: dict[int, int] = {}
        self.literals: list[tuple[Literal, int]] = []

    def fail(self, position: int, message: str) -> NoReturn:
        raise ConditionSyntaxError(self.text, position, message)

    def condition(self) -> Condition:
        if not self.text.strip():
            self.fail(
                0, f"empty condition (write PLACEHOLDER OPERATOR VALUE, e.g. {self._example})"
            )
        self.closers = self._match_brackets()
        at, op = self._operator()
        (ls, le), (rs, re_) = self._trim(0, at), self._trim(at + len(op), len(self.text))
        left = self._operand(ls, le, op, "left")
        right = self._operand(rs, re_, op, "right")
        if isinstance(left, Pattern | AnyOf):  # _operand refuses these on the left already
            self.fail(ls, "pat() and any() go on the right side")
        self._check_meaning(op, (left, ls), (right, rs))
        return Condition(self.text, left, op, right)

    def _trim(self, start: int, end: int) -> tuple[int, int]:
        while start < end and self.text[start].isspace():
            start += 1
        while end > start and self.text[end - 1].isspace():
            end -= 1
        return start, end

    # Brackets and operator

    def _match_brackets(self) -> dict[int, int]:
        pairs, stack, closers = {")": "(", "]": "["}, list[int](), dict[int, int]()
        for i, ch in enumerate(self.text):
            if ch in "([":
                stack.append(i)
            elif ch in pairs:
                if not stack:
                    self.fail(i, f"unexpected {ch!r}: nothing is open here")
                if self.text[stack[-1]] != pairs[ch]:
                    self.fail(i, f"{ch!r} does not close {self.text[stack[-1]]!r}")
                closers[stack.pop()] = i
        if stack:
            ch = self.text[stack[-1]]
            self.fail(stack[-1], f"unclosed {ch!r} (add {')' if ch == '(' else ']'!r})")
        return closers

    def _operator_runs(self) -> list[tuple[int, str]]:
        """Runs of operator characters outside brackets and parentheses, e.g. [(9, "==")]."""
        runs, depth, i, n = list[tuple[int, str]](), 0, 0, len(self.text)
        while i < n:
            ch = self.text[i]
            depth += (ch in "([") - (ch in ")]")
            if depth == 0 and ch in _OPERATOR_CHARS:
                j = i
                while j < n and self.text[j] in _OPERATOR_CHARS:
                    j += 1
                runs.append((i, self.text[i:j]))
                i = j
                continue
            i += 1
        return runs

    def _operator(self) -> tuple[int, str]:
        runs = self._operator_runs()
        if not runs:
            gap = re.search(r"\S\s", self.text)
            where = gap.start() + 1 if gap else len(self.text)
            self.fail(where, f"missing operator (use ==, !=, <, <=, > or >=, e.g. {self._example})")
        at, op = runs[0]
        if op not in OPERATORS:
            hint = _SUGGESTIONS.get(op, "one of ==, !=, <, <=, >, >=")
            self.fail(at, f"unknown operator {op!r} (use {hint})")
        self._check_sides_present(at, op)
        if not self._spaced(at, op):
            fixed = f"{self.text[:at].strip()} {op} {self.text[at + len(op) :].strip()}"
            self.fail(at, f"missing space around operator {op!r} (write {fixed!r})")
        for second, run in runs[1:]:
            if run in OPERATORS and self._spaced(second, run):
                self.fail(second, f"second operator {run!r} (write one comparison per condition)")
        return at, op

    def _check_sides_present(self, at: int, op: str) -> None:
        if not self.text[:at].strip():
            self.fail(at, f"missing value before {op!r} (e.g. {self._example})")
        if not self.text[at + len(op) :].strip():
            self.fail(at + len(op), f"missing value after {op!r} (e.g. {self._example})")

    def _spaced(self, at: int, op: str) -> bool:
        end = at + len(op)
        return self.text[at - 1].isspace() and end < len(self.text) and self.text[end].isspace()

    # Operands

    def _operand(self, start: int, end: int, op: str, side: str) -> Operand:
        chunk = self.text[start:end]
        if chunk.startswith("["):
            return self._placeholder(start, end)
        call = _FUNCTION.match(chunk)
        if call:
            return self._call(start, end, call.group(1), op, side)
        return self._literal(start, end)

    def _placeholder(self, start: int, end: int) -> Placeholder:
        close = self.closers[start]
        written = self.text[start + 1 : close]
        name = written.strip().upper()
        if name not in PLACEHOLDERS:
            self.fail(start, f"unknown placeholder [{written}] ({self._known()})")
        if name not in self.allowed:
            self.fail(start, f"[{name}] is not available for {self.kind} rules ({self._known()})")
        steps = self._path(close + 1, end, name)
        path = self.text[close + 1 : end].removeprefix(".")
        return Placeholder(self.text[start:end], name, steps, path)

    def _known(self) -> str:
        return "use one of " + ", ".join(f"[{name}]" for name in sorted(self.allowed))

    def _path(self, start: int, end: int, name: str) -> tuple[Step, ...]:
        if start == end:
            if name in _NEEDS_PATH:
                self.fail(end, _NEEDS_PATH[name])
            return ()
        if name not in PATH_PLACEHOLDERS:
            self.fail(start, f"[{name}] takes no path (only [BODY], [HEADERS] and [ROW] do)")
        steps, i = list[Step](), start
        while i < end:
            step, i = self._step(i, end)
            steps.append(step)
        if name == "HEADERS" and (len(steps) != 1 or not isinstance(steps[0], str)):
            self.fail(start, _NEEDS_PATH[name])
        if name == "ROW" and not isinstance(steps[0], str):
            self.fail(start, _NEEDS_PATH[name])
        return tuple(steps)

    def _step(self, i: int, end: int) -> tuple[Step, int]:
        """One ``.key`` or ``[index]`` of a path starting at ``i``, and where the next begins."""
        if self.text[i] == "[":
            close = self.closers[i]
            if not _INDEX.fullmatch(self.text[i + 1 : close]):
                self.fail(i + 1, "an array index is a whole number, e.g. [0]")
            return int(self.text[i + 1 : close]), close + 1
        if self.text[i] != ".":
            self.fail(i, f"unexpected {self.text[i]!r} in path (use .name or [index])")
        j = i + 1
        while j < end and self.text[j] not in ".[]" and not self.text[j].isspace():
            j += 1
        if j == i + 1:
            self.fail(i + 1, "empty name after '.' in path")
        return self.text[i + 1 : j], j

    def _call(self, start: int, end: int, name: str, op: str, side: str) -> Operand:
        if name not in FUNCTIONS:
            self.fail(start, f"unknown function {name!r} (use len, has, pat or any)")
        opened = start + len(name)
        close = self.closers[opened]
        if close != end - 1:
            self.fail(close + 1, f"unexpected text after {name}(...)")
        inner_start, inner_end = self._trim(opened + 1, close)
        text = self.text[start:end]
        if name in ("len", "has"):
            return Call(text, name, self._argument(name, inner_start, inner_end))
        self._check_matcher(name, start, op, side)
        if name == "pat":
            if inner_start == inner_end:
                self.fail(inner_start, "pat() needs a pattern, e.g. pat(*UP*)")
            return Pattern(text, self.text[inner_start:inner_end])
        return AnyOf(text, self._options(inner_start, inner_end))

    def _argument(self, name: str, start: int, end: int) -> Placeholder:
        if start == end or self.text[start] != "[":
            self.fail(start, f"{name}() takes a placeholder, e.g. {name}([BODY].items)")
        return self._placeholder(start, end)

    def _check_matcher(self, name: str, start: int, op: str, side: str) -> None:
        if side == "left":
            self.fail(start, f"{name}() goes on the right side, e.g. [BODY].status == {name}(UP)")
        if op not in ("==", "!="):
            self.fail(start, f"{name}() works only with == or !=")

    def _options(self, start: int, end: int) -> tuple[Literal, ...]:
        if start == end:
            self.fail(start, "any() needs at least one value, e.g. any(200, 204)")
        options, depth, piece = [], 0, start
        for i in range(start, end + 1):
            ch = self.text[i] if i < end else ","
            depth += (ch in "([") - (ch in ")]")
            if ch == "," and depth == 0:
                options.append(self._option(*self._trim(piece, i)))
                piece = i + 1
        return tuple(options)

    def _option(self, start: int, end: int) -> Literal:
        if start == end:
            self.fail(start, "empty value in any() (remove the extra comma)")
        if self.text[start] == "[" or _FUNCTION.match(self.text[start:end]):
            self.fail(start, "any() takes plain values, not placeholders or functions")
        return self._literal(start, end)

    def _literal(self, start: int, end: int) -> Literal:
        literal = read_literal(self.text[start:end])
        self.literals.append((literal, start))
        return literal

    # Meaning: what parses but could never be evaluated sensibly

    def _check_meaning(
        self, op: str, left: tuple[ValueOperand, int], right: tuple[Operand, int]
    ) -> None:
        target = placeholder_of(left[0]) or placeholder_of(right[0])
        if target is None:
            self.fail(
                0, f"no placeholder to check (compare one with a value, e.g. {self._example})"
            )
        for operand, at in (left, right):
            if op in ORDERING and _is_boolean(operand):
                self.fail(at, f"{operand.text} is true or false; compare it with == or !=")
        for literal, at in self.literals:
            self._check_literal(literal, at, op, target)

    def _check_literal(self, literal: Literal, at: int, op: str, target: Placeholder) -> None:
        numeric = isinstance(literal.value, Decimal)
        in_ms = target.name in MILLISECOND_PLACEHOLDERS and not target.steps
        if not numeric and looks_like_duration(literal.text) and (op in ORDERING or in_ms):
            self.fail(at, f"bad duration {literal.text!r} (use ms, s, m, h or d, e.g. 500ms, 48h)")
        if op in ORDERING and not numeric:
            self.fail(at, f"{literal.text!r} is not a number or a duration, which {op!r} needs")


def _is_boolean(operand: Operand) -> bool:
    if isinstance(operand, Call):
        return operand.function == "has"
    return isinstance(operand, Placeholder) and operand.name in BOOLEAN_PLACEHOLDERS
