"""What each API endpoint takes and answers, declared next to its route for the OpenAPI document.

``@documented(...)`` sits beside ``@role(...)`` on every /api/v1 view (a test walks
``url_map`` so none ships without one). Query parameters are declared as ``IntArg``,
``ChoiceArg`` and ``TextArg`` objects that the view also reads its arguments with, so the
limits in the document are the limits the view enforces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel

from rulewatch.schemas import FieldError
from rulewatch.web.errors import ApiError

OPERATION_ATTRIBUTE = "api_operation"
View = TypeVar("View", bound=Callable[..., Any])
# plain ASCII digits, few enough for int() to read them at once
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def _bad_parameter(name: str, message: str, raw: str) -> ApiError:
    return ApiError(400, "bad_parameter", message, [FieldError(name, f"got {raw!r}")])


@dataclass(frozen=True)
class IntArg:
    """A whole-number query parameter from ``low`` to ``high``."""

    name: str
    low: int
    high: int
    description: str
    default: int | None = None

    def given(self) -> int | None:
        """The value sent, or None when absent; 400 bad_parameter when out of range."""
        raw = request.args.get(self.name)
        if raw is None:
            return None
        if not _WHOLE_NUMBER.fullmatch(raw) or not self.low <= int(raw) <= self.high:
            message = f"{self.name} must be a whole number from {self.low} to {self.high}"
            raise _bad_parameter(self.name, message, raw)
        return int(raw)

    def read(self) -> int:
        """The value sent, or the default."""
        value = self.given()
        if value is not None:
            return value
        if self.default is None:
            raise TypeError(f"{self.name} has no default: read it with given()")
        return self.default

    def parameter(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema: dict[str, Any] = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if self.default is not None:
            schema["default"] = self.default
        return _query(self.name, self.description, schema)


@dataclass(frozen=True)
class ChoiceArg:
    """A query parameter that takes one of a few words."""

    name: str
    choices: tuple[str, ...]
    default: str
    description: str

    def read(self) -> str:
        """The word sent, or the default; 400 bad_parameter for any other."""
        value = request.args.get(self.name, self.default)
        if value not in self.choices:
            words = ", ".join(self.choices[:-1]) + " or " + self.choices[-1]
            raise _bad_parameter(self.name, f"{self.name} must be {words}", value)
        return value

    def parameter(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema = {"type": "string", "enum": list(self.choices), "default": self.default}
        return _query(self.name, self.description, schema)


@dataclass(frozen=True)
class TextArg:
    """A free-text query parameter (the view or its service judges the value)."""

    name: str
    description: str
    default: str | None = None
    pattern: str | None = None

    def given(self) -> str | None:
        """The text sent, or None when absent."""
        return request.args.get(self.name)

    def read(self) -> str:
        """The text sent, or the default."""
        if self.default is None:
            raise TypeError(f"{self.name} has no default: read it with given()")
        return request.args.get(self.name, self.default)

    def parameter(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema: dict[str, Any] = {"type": "string"}
        if self.default is not None:
            schema["default"] = self.default
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        return _query(self.name, self.description, schema)


QueryArg = IntArg | ChoiceArg | TextArg
Answer = type[BaseModel] | str | None  # a JSON model, a media type such as "text/html", no body


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


@dataclass(frozen=True)
class Operation:
    """One endpoint as the OpenAPI document shows it.

    ``answer`` is the model of the success body (None: no body) sent with ``status``, and
    ``answers`` the other successes (a model, None, or the media type of a body that is not
    JSON); ``body`` the model a request body is validated with (``partial``: any of its
    fields, as a PATCH sends them); ``errors`` the error statuses beyond those the builder
    adds from the endpoint's role, method and path (400, 401, 403, 415, 404).
    """

    answer: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    partial: bool = False
    query: Sequence[QueryArg] = ()
    errors: frozenset[int] = frozenset()
    answers: Mapping[int, Answer] = field(default_factory=dict)

    def successes(self) -> dict[int, Answer]:
        """Every success status with what it answers."""
        return {self.status: self.answer, **self.answers}


def documented(
    answer: type[BaseModel] | None,
    status: int = 200,
    *,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    partial: bool = False,
    query: Sequence[QueryArg] = (),
    errors: Iterable[int] = (),
    answers: Mapping[int, Answer] | None = None,
) -> Callable[[View], View]:
    """Declare what an API endpoint takes and answers (see ``Operation``)."""
    operation = Operation(answer, status, body, body_required, partial, tuple(query),
                          frozenset(errors), dict(answers or {}))  # fmt: skip

    def declare(view: View) -> View:
        setattr(view, OPERATION_ATTRIBUTE, operation)
        return view

    return declare


def operation_of(view: Callable[..., Any] | None) -> Operation | None:
    """What ``view`` declared with ``@documented``, or None."""
    operation: Operation | None = getattr(view, OPERATION_ATTRIBUTE, None)
    return operation
