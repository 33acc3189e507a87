"""The stability report as HTML: one Jinja2 template for the web page, the task and emails."""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from rulewatch.services.stability import StabilityReport, worst_first_key


@cache
def report_environment() -> Environment:
    """The Jinja2 environment the report template is rendered with (autoescaping on)."""
    return Environment(
        loader=PackageLoader("rulewatch", "web/templates"),
        autoescape=select_autoescape(disabled_extensions=("txt",), default=True),
    )


def render_stability_html(report: StabilityReport, worst_first: bool = True) -> str:
    """Render the stability report as a standalone HTML document."""
    rules = sorted(report.rules, key=worst_first_key) if worst_first else report.rules
    template = report_environment().get_template("stability_report.html")
    return template.render(report=report, rules=rules)
