"""The dashboard, a rule's page, and the rule editor."""

from __future__ import annotations

from flask import render_template

from rulewatch.web.ui import page_role, ui


@ui.get("/")
@page_role("viewer")
def dashboard() -> str:
    """Every rule with its status, failing first."""
    return render_template("ui/error.html", title="Rules", message="next")
