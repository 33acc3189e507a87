"""The stability report page: the report's own HTML, a window and tag to choose, a download."""

from __future__ import annotations

import math
from urllib.parse import urlencode

from flask import Response, abort, render_template, request, url_for
from flask.typing import ResponseReturnValue

from rulewatch.models import utcnow
from rulewatch.services.reports import rendered_stability_html, shared_stability_report
from rulewatch.services.rules import all_tags, tag_in_use
from rulewatch.services.stability import StabilityReport, worst_first_key
from rulewatch.web.common import rt
from rulewatch.web.ui import page_number, page_role, ui

WINDOWS = ("1h", "24h", "7d", "30d", "90d")
PER_PAGE = 100
# the downloaded document carries its own style sheet and no script
DOWNLOAD_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _report(window: str, tag: str | None) -> StabilityReport:
    """The report for ``window`` and ``tag``, shared with the API through the report cache."""
    if window not in WINDOWS:
        abort(404)
    runtime = rt()
    if tag is not None:  # a made-up tag would only take (and churn) a place in the cache
        with runtime.factory() as session:
            if not tag_in_use(session, tag):
                abort(404)
    return shared_stability_report(runtime.reports, runtime.factory, window, tag, utcnow())


@ui.get("/report")
@page_role("viewer")
def report() -> ResponseReturnValue:
    """The stability report, worst first, a page of rules at a time."""
    window = request.args.get("window", "7d")
    window = window if window in WINDOWS else "7d"
    tag = request.args.get("tag", "").strip()[:64] or None
    page_no = page_number(request.args.get("page"))
    result = _report(window, tag)
    ranked = sorted(result.rules, key=worst_first_key)
    pages = max(1, math.ceil(len(ranked) / PER_PAGE))
    shown = ranked[(page_no - 1) * PER_PAGE : page_no * PER_PAGE]
    with rt().factory() as session:
        tags = all_tags(session)
    return render_template(
        "ui/report.html", title="Stability report", report=result, rules=shown,
        window=window, windows=WINDOWS, tag=tag, tags=tags, page=page_no, pages=pages,
        total=len(ranked), first=(page_no - 1) * PER_PAGE + 1,
        rule_url=lambda rule_id: url_for("ui.rule", rule_id=rule_id),
        page_args=lambda n: urlencode({"window": window, "tag": tag or "", "page": n}),
    )  # fmt: skip


@ui.get("/report/download")
@page_role("viewer")
def download_report() -> Response:
    """The whole report as a standalone HTML file (what the report task and the digest send)."""
    window = request.args.get("window", "7d")
    tag = request.args.get("tag", "").strip()[:64] or None
    html = rendered_stability_html(_report(window, tag))
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    suffix = (
        f"-{''.join(c for c in tag if (c.isascii() and c.isalnum()) or c in '-_')}" if tag else ""
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="rulewatch-stability-{window}{suffix}-{stamp}.html"'
    )
    response.headers["Content-Security-Policy"] = DOWNLOAD_POLICY
    return response
