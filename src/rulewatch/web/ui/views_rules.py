"""The dashboard, a rule's page, and the actions on a rule (verify now, pause, delete)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from rulewatch import dispatch
from rulewatch.domain.stability import parse_window
from rulewatch.models import Rule, utcnow
from rulewatch.services.alerts import recent_incidents
from rulewatch.services.dashboard import (
    history,
    rates_by_window,
    recent_verifications,
    sparklines,
)
from rulewatch.services.gaps import rule_gaps
from rulewatch.services.rules import (
    RULE_STATUSES,
    RuleNotFound,
    all_tags,
    any_rule,
    change_rule,
    get_rule,
    list_rules,
    remove_rule,
    rule_status,
    spec_of,
)
from rulewatch.web.common import celery_app, rt, write
from rulewatch.web.ui import page_number, page_role, ui
from rulewatch.web.ui.charts import history_chart, sparkline

TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PER_PAGE = 50
RATE_WINDOWS = ("24h", "7d", "30d")
CHART_WINDOWS = ("1h", "6h", "24h", "7d", "30d")
RECENT_VERIFICATIONS = 20
RECENT_GAPS, GAPS_SHOWN = 20, "30d"


@dataclass(frozen=True)
class Filters:
    """The dashboard's filters and page, read from the query string."""

    q: str
    status: str
    tag: str
    page: int

    @classmethod
    def read(cls) -> Filters:
        """The filters in this request; anything unknown falls back to "all"."""
        args = request.args
        status = args.get("status", "")
        page = args.get("page", "1")
        return cls(
            q=args.get("q", "").strip()[:200],
            status=status if status in RULE_STATUSES else "",
            tag=args.get("tag", "").strip()[:64],
            page=page_number(page),
        )

    def query(self, page: int) -> str:
        """The query string of page ``page`` with these filters."""
        kept = {"q": self.q, "status": self.status, "tag": self.tag}
        return urlencode({**{k: v for k, v in kept.items() if v}, "page": page})

    @property
    def active(self) -> bool:
        """True when any filter narrows the list."""
        return bool(self.q or self.status or self.tag)


@ui.get("/")
@page_role("viewer")
def dashboard() -> ResponseReturnValue:
    """Every rule with its status, failing first, a page at a time."""
    filters = Filters.read()
    now = utcnow()
    with rt().factory() as session:
        rules, total = list_rules(
            session, filters.tag or None, PER_PAGE, (filters.page - 1) * PER_PAGE,
            status=filters.status or None, name_contains=filters.q or None, failing_first=True,
        )  # fmt: skip
        ids = [r.id for r in rules]
        rates = rates_by_window(session, ids, now, RATE_WINDOWS)
        sparks = sparklines(session, ids, now)
        some_rule = total > 0 or any_rule(session)
        rows = [_row(r, rates.get(r.id, {}), sparks.get(r.id, [])) for r in rules]
        tags = all_tags(session)
    pages = max(1, math.ceil(total / PER_PAGE))
    return render_template(
        "ui/dashboard.html", title="Rules", rows=rows, total=total, filters=filters,
        pages=pages, tags=tags, any_rule=some_rule, windows=RATE_WINDOWS,
        statuses=RULE_STATUSES,
    )  # fmt: skip


def _row(rule: Rule, rates: dict[str, Any], spark: list[float | None]) -> dict[str, Any]:
    return {
        "id": rule.id, "name": rule.name, "kind": rule.kind, "status": rule_status(rule),
        "last_verified_at": rule.last_verified_at, "tags": rule.tag_names,
        "target": rule.stability_target, "rates": rates,
        "spark": sparkline(spark, label=f"{rule.name}: pass rate per hour, last 24 hours"),
    }  # fmt: skip


@ui.get("/rules/<int:rule_id>")
@page_role("viewer")
def rule(rule_id: int) -> ResponseReturnValue:
    """A rule: definition, stability, history chart, recent verifications, incidents."""
    window = request.args.get("window", "24h")
    window = window if window in CHART_WINDOWS else "24h"
    now = utcnow()
    with rt().factory() as session:
        found = _rule_or_404(session, rule_id)
        rates = rates_by_window(session, [rule_id], now, RATE_WINDOWS).get(rule_id, {})
        points = history(session, rule_id, window, now)
        recent = recent_verifications(session, rule_id, RECENT_VERIFICATIONS)
        incidents = recent_incidents(session, 10, False, rule_id)
        start = now - parse_window(window)
        gaps = rule_gaps(session, rule_id, now - parse_window(GAPS_SHOWN), RECENT_GAPS)
        shown = [(g.started_at, g.ended_at) for g in gaps]
        context = {
            "rule": found, "spec": spec_of(found), "status": rule_status(found),
            "rates": rates, "windows": RATE_WINDOWS, "chart_windows": CHART_WINDOWS,
            "window": window, "recent": recent, "incidents": incidents, "gaps": gaps,
            "gaps_shown": GAPS_SHOWN, "chart": history_chart(points, start, now, gaps=shown),
            "task": _task(request.args.get("task", "")),
        }  # fmt: skip
        return render_template("ui/rule.html", title=found.name, **context)


def _task(task_id: str) -> dispatch.TaskState | None:
    """The verify-now task the page was sent back with, as it first shows it (the script then
    follows it)."""
    return dispatch.task_state(celery_app(), task_id) if TASK_ID.fullmatch(task_id) else None


def _rule_or_404(session: Session, rule_id: int) -> Rule:
    try:
        return get_rule(session, rule_id)
    except RuleNotFound:
        abort(404)


@ui.post("/rules/<int:rule_id>/verify")
@page_role("editor")
def verify_rule(rule_id: int) -> ResponseReturnValue:
    """Verify now through the interactive queue; the page follows the task until it ends."""
    try:
        task_id = dispatch.verify_now(rt(), rule_id)
    except RuleNotFound:
        abort(404)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(task_id=task_id), 202
    return redirect(url_for("ui.rule", rule_id=rule_id, task=task_id))


@ui.post("/rules/<int:rule_id>/enabled")
@page_role("editor")
def set_enabled(rule_id: int) -> ResponseReturnValue:
    """Pause or resume a rule."""
    enable = request.form.get("enabled") == "1"
    settings = rt().settings
    with write() as session:
        found = _rule_or_404(session, rule_id)
        name = found.name
        change_rule(
            session, found, {"enabled": enable}, utcnow(), settings.alerts, settings.base_url
        )
    flash(f"{name} {'resumed' if enable else 'paused'}.", "success")
    return redirect(url_for("ui.rule", rule_id=rule_id))


@ui.post("/rules/<int:rule_id>/delete")
@page_role("editor")
def delete_rule(rule_id: int) -> ResponseReturnValue:
    """Delete a rule and its history."""
    settings = rt().settings
    with write() as session:
        found = _rule_or_404(session, rule_id)
        name = found.name
        remove_rule(session, found, settings.alerts, settings.base_url)
    flash(f"Deleted {name} and its history.", "success")
    return redirect(url_for("ui.dashboard"))
