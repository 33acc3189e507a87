"""API errors: JSON with a machine-readable code, a message a person can act on, the fields."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from rulewatch.schemas import FieldError
from rulewatch.shapes import ErrorBody, answer


class ApiError(Exception):
    """An error answered as JSON with a code, a message and the fields at fault.

    ``details`` adds machine-readable facts to the error object (such as the role needed);
    ``headers`` go on the response (WWW-Authenticate, Retry-After).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[FieldError] | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or []
        self.details, self.headers = details or {}, headers or {}


def error_response(exc: ApiError) -> tuple[Response, int]:
    """The JSON response for ``exc``: ``{"error": {"code", "message", ..., "errors"}}``."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, **exc.details}
    if exc.errors:
        body["errors"] = [e.as_dict() for e in exc.errors]
    response = jsonify(answer(ErrorBody, error=body))
    response.headers.update(exc.headers)
    return response, exc.status
