"""Answers while the database is unavailable: 503 naming the database, never a 500 with a
traceback; JSON under /api/, a page elsewhere; one log line per outage (``OutageLog``)."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, render_template, request

from rulewatch.outage import RETRY_AFTER_S, UNAVAILABLE_ERRORS, reason
from rulewatch.web.api import API_PATHS
from rulewatch.web.common import rt
from rulewatch.web.errors import ApiError, error_response


def init_app(app: Flask) -> None:
    """Answer 503 for every request that meets an unavailable database."""
    for error in UNAVAILABLE_ERRORS:
        app.register_error_handler(error, database_down)


def unavailable_message(exc: BaseException) -> str:
    """What a person reads: which database, what the driver said, what to do."""
    runtime = rt()
    runtime.outage.failed(exc)
    return (
        f"the database ({runtime.outage.label}) is unavailable: {reason(exc)};"
        f" try again in a few seconds"
    )


def database_down(exc: Exception) -> tuple[Response | str, int, dict[str, str]]:
    """503: JSON ``database_unavailable`` under /api/, the error page elsewhere."""
    message = unavailable_message(exc)
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if request.path.startswith(API_PATHS):
        response, status = error_response(
            ApiError(503, "database_unavailable", message, headers=headers)
        )
        return response, status, {}
    # the page must not ask the database who is signed in again (Flask-Login's user loader)
    g._login_user = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]
    page = render_template("ui/error.html", title="Database unavailable", message=message)
    return page, 503, headers
