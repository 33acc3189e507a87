"""The stability report page."""

from __future__ import annotations

from flask import render_template

from rulewatch.web.ui import page_role, ui


@ui.get("/report")
@page_role("viewer")
def report() -> str:
    """The stability report."""
    return render_template("ui/error.html", title="Report", message="next")
