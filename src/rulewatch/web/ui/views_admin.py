"""Pages for incidents, notifications, maintenance windows, data sources, users and tokens."""

from __future__ import annotations

from flask import render_template

from rulewatch.web.ui import page_role, ui


def _placeholder(title: str) -> str:
    return render_template("ui/error.html", title=title, message="This page comes next.")


@ui.get("/incidents")
@page_role("viewer")
def incidents() -> str:
    """Incidents, open first."""
    return _placeholder("Incidents")


@ui.get("/notifications")
@page_role("viewer")
def notifications() -> str:
    """Alert emails and their send status."""
    return _placeholder("Notifications")


@ui.get("/maintenance")
@page_role("viewer")
def maintenance() -> str:
    """Maintenance windows."""
    return _placeholder("Maintenance")


@ui.get("/datasources")
@page_role("admin")
def datasources() -> str:
    """Data sources for sql rules."""
    return _placeholder("Data sources")


@ui.get("/users")
@page_role("admin")
def users() -> str:
    """Users and their roles."""
    return _placeholder("Users")


@ui.get("/tokens")
@page_role("admin")
def tokens() -> str:
    """API tokens."""
    return _placeholder("Tokens")
