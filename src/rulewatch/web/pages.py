"""Plain endpoints outside the UI: the health check, and the report's old address."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from rulewatch.outage import database_unavailable
from rulewatch.web.common import rt
from rulewatch.web.database_down import unavailable_message

pages = Blueprint("pages", __name__)


@pages.get("/reports/stability")
def old_report_page() -> ResponseReturnValue:
    """The report's first address: the report page, behind sign-in, took its place."""
    query = request.query_string.decode()
    return redirect(url_for("ui.report") + (f"?{query}" if query else ""), 301)


@pages.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """Liveness and database reachability: 503 naming the database when it does not answer."""
    try:
        with rt().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # health must answer, whatever is broken
        if database_unavailable(exc):
            message = unavailable_message(exc)
            return {"status": "error", "database": "unavailable", "message": message}, 503
        return {"status": "error", "database": type(exc).__name__}, 503
    return {"status": "ok", "database": "ok"}, 200
