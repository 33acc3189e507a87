"""HTTP interfaces: the JSON API and the HTML pages."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the blueprints."""
    from rulewatch.web.api import api
    from rulewatch.web.pages import pages

    app.register_blueprint(api)
    app.register_blueprint(pages)
