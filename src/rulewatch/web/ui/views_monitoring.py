"""Pages for what happens to rules: incidents, alert emails, maintenance windows.

Thin views over the services the API uses; a change is a form posted with its CSRF token,
answered by a redirect and a flash, or by the page again with each error next to its field.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from rulewatch.models import Incident, utcnow
from rulewatch.schemas import FieldError, MaintenanceInvalid
from rulewatch.services.alerts import failing_reasons, recent_incidents
from rulewatch.services.maintenance import (
    MaintenanceNotFound,
    create_window,
    delete_window,
    list_windows,
    window_to_dict,
)
from rulewatch.services.notifications import recent_notifications
from rulewatch.services.rules import RuleNotFound, get_rule, rule_names
from rulewatch.web.common import rt, write
from rulewatch.web.ui import page_role, ui
from rulewatch.web.ui.forms import MaintenanceForm

OPEN_INCIDENTS = 200
RESOLVED_INCIDENTS = 50
NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed")
NOTIFICATION_LIMITS = (50, 200, 500)


@ui.get("/incidents")
@page_role("viewer")
def incidents() -> str:
    """Open incidents first, then the recently resolved, each with why its rule failed."""
    now = utcnow()
    with rt().factory() as session:
        opened = recent_incidents(session, OPEN_INCIDENTS, True, None)
        recent = recent_incidents(session, RESOLVED_INCIDENTS, False, None)
        resolved = [i for i in recent if i.resolved_at is not None]
        return render_template(
            "ui/incidents.html", title="Incidents",
            opened=_incidents(session, opened, now), resolved=_incidents(session, resolved, now),
        )  # fmt: skip


def _incidents(session: Session, rows: list[Incident], now: datetime) -> list[dict[str, Any]]:
    reasons = failing_reasons(session, rows, now)
    return [
        {"row": i, "duration": duration((i.resolved_at or now) - i.opened_at),
         "reason": reasons.get(i.id)}
        for i in rows
    ]  # fmt: skip


def duration(delta: timedelta) -> str:
    """A length of time in its two largest non-zero units: "2 d 3 h", "4 h 12 min", "38 s"."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"


@ui.get("/notifications")
@page_role("viewer")
def notifications() -> str:
    """Alert emails, newest first, with their send status; filtered by status."""
    status = request.args.get("status", "")
    status = status if status in NOTIFICATION_STATUSES else ""
    limit = request.args.get("limit", "")
    size = int(limit) if limit in {str(n) for n in NOTIFICATION_LIMITS} else NOTIFICATION_LIMITS[0]
    with rt().factory() as session:
        rows = recent_notifications(session, size, status or None)
        return render_template(
            "ui/notifications.html", title="Notifications", rows=rows, status=status,
            limit=size, statuses=NOTIFICATION_STATUSES, limits=NOTIFICATION_LIMITS,
        )  # fmt: skip


@ui.get("/maintenance")
@page_role("viewer")
def maintenance() -> str:
    """Maintenance windows with whether each is active and its next occurrence."""
    return _maintenance_page(MaintenanceForm())


@ui.post("/maintenance")
@page_role("editor")
def new_maintenance() -> ResponseReturnValue:
    """Plan a maintenance window; on an error nothing is stored and the form says where."""
    form = MaintenanceForm()
    if form.validate_on_submit():
        try:
            with write() as session:
                name = create_window(session, _with_rule_id(session, form.to_spec())).name
        except MaintenanceInvalid as exc:
            form.show_errors(exc.errors)
        else:
            flash(f"Maintenance window {name!r} planned.", "success")
            return redirect(url_for("ui.maintenance"))
    return _maintenance_page(form), 422


@ui.post("/maintenance/<int:window_id>/delete")
@page_role("editor")
def delete_maintenance(window_id: int) -> ResponseReturnValue:
    """End and forget a window (verifications it covered stay marked)."""
    try:
        with write() as session:
            name = delete_window(session, window_id)
    except MaintenanceNotFound as exc:
        flash(f"Nothing deleted: {exc}.", "error")
    else:
        flash(f"Maintenance window {name!r} deleted.", "success")
    return redirect(url_for("ui.maintenance"))


def _maintenance_page(form: MaintenanceForm) -> str:
    now = utcnow()
    with rt().factory() as session:
        windows = [_window(window_to_dict(w, now)) for w in list_windows(session)]
        ids = {w["rule_id"] for w in windows if w["rule_id"] is not None}
        rules = rule_names(session, ids)
    return render_template("ui/maintenance.html", title="Maintenance", windows=windows,
                           rules=rules, form=form)  # fmt: skip


def _with_rule_id(session: Session, spec: dict[str, Any]) -> dict[str, Any]:
    """A rule given by name becomes its id; a name no rule has is an error on that field."""
    key = spec.get("rule_id")
    if not isinstance(key, str):
        return spec
    try:
        return {**spec, "rule_id": get_rule(session, key).id}
    except RuleNotFound:
        raise MaintenanceInvalid([FieldError("rule_id", f"no rule is named {key!r}")]) from None


def _window(data: dict[str, Any]) -> dict[str, Any]:
    """The API form with its times as datetimes again, for the page to show."""
    times: dict[str, Any] = {
        key: datetime.fromisoformat(data[key]) if data[key] else None
        for key in ("starts_at", "ends_at")
    }
    upcoming = data["next"]
    if upcoming:
        times["next"] = (datetime.fromisoformat(upcoming["starts_at"]),
                         datetime.fromisoformat(upcoming["ends_at"]))  # fmt: skip
    return {**data, **times, "lasts": duration(timedelta(seconds=data["duration_s"]))}
