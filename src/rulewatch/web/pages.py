"""HTML pages: the stability report and the health check."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from sqlalchemy import text

from rulewatch.models import utcnow
from rulewatch.runtime import Runtime
from rulewatch.services.reports import render_stability_html
from rulewatch.services.stability import stability_report

pages = Blueprint("pages", __name__)


def _rt() -> Runtime:
    rt: Runtime = current_app.extensions["rulewatch"]
    return rt


@pages.get("/reports/stability")
def report_page() -> Response:
    """The stability report, rendered by the same template as the report task."""
    window = request.args.get("window", "7d")
    with _rt().factory() as session:
        try:
            report = stability_report(session, window, utcnow(), request.args.get("tag"))
        except ValueError as exc:
            return Response(f"Bad window: {exc}", 400, mimetype="text/plain")
        return Response(render_stability_html(report), mimetype="text/html")


@pages.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """Liveness and database reachability."""
    try:
        with _rt().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # health must answer, whatever is broken
        return {"status": "error", "database": type(exc).__name__}, 503
    return {"status": "ok", "database": "ok"}, 200
