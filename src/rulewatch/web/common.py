"""What every web module needs from the app serving a request: its Runtime, a write, JSON input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from flask import current_app, request
from sqlalchemy.orm import Session

from rulewatch.db import transaction
from rulewatch.runtime import Runtime
from rulewatch.web.errors import ApiError


def rt() -> Runtime:
    """The Runtime of the app serving this request."""
    runtime: Runtime = current_app.extensions["rulewatch"]
    return runtime


def celery_app() -> Celery[Any]:
    """The Celery app of the app serving this request."""
    app: Celery[Any] = current_app.extensions["celery"]
    return app


@contextmanager
def write() -> Iterator[Session]:
    """A session whose changes commit when the block ends (and roll back on an exception)."""
    with transaction(rt().factory) as session:
        yield session


def json_body(required: bool = True) -> dict[str, Any]:
    """The request's JSON object; ``{}`` for an empty body unless ``required``; else a 400."""
    data = request.get_json(silent=True)
    if data is None and not required and not request.get_data():
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the request body must be a JSON object")
    return data
