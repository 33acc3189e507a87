"""The stability report as HTML: one Jinja2 template for the web page, the task and emails."""

from __future__ import annotations

import threading
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.models import utcnow
from rulewatch.services.stability import (
    ReportCache,
    StabilityReport,
    stability_report,
    worst_first_key,
)


@cache
def report_environment() -> Environment:
    """The Jinja2 environment the report template is rendered with (autoescaping on)."""
    return Environment(
        loader=PackageLoader("rulewatch", "web/templates"),
        autoescape=select_autoescape(disabled_extensions=("txt",), default=True),
    )


def shared_stability_report(
    cache: ReportCache,
    factory: sessionmaker[Session],
    window: str,
    tag: str | None,
    now: datetime,
) -> StabilityReport:
    """The report over ``window`` for ``tag``, through the process's report cache, so the API
    and the pages share one computation."""

    def compute() -> StabilityReport:  # may run later, in a refresh thread: its own now
        with factory() as session:
            return stability_report(session, window, utcnow(), tag)

    return cache.get((window, tag), now, compute)


def render_stability_html(report: StabilityReport, worst_first: bool = True) -> str:
    """Render the stability report as a standalone HTML document."""
    rules = sorted(report.rules, key=worst_first_key) if worst_first else report.rules
    template = report_environment().get_template("stability_report.html")
    return template.render(report=report, rules=rules)


_RENDERED_SIZE = 16
_rendered: dict[tuple[str, str | None, datetime], str] = {}
_rendered_lock = threading.Lock()


def rendered_stability_html(report: StabilityReport) -> str:
    """``render_stability_html`` of a cached report, rendered once per report.

    At 10,000 rules the document is about 2 MB and takes a quarter of a second to render;
    the report cache hands every reader the same report, so they can share its HTML.
    """
    key = (report.window, report.tag, report.end)
    with _rendered_lock:
        html = _rendered.get(key)
    if html is None:
        html = render_stability_html(report)
        with _rendered_lock:
            if len(_rendered) >= _RENDERED_SIZE:
                _rendered.clear()
            _rendered[key] = html
    return html
