"""HTTP interfaces: the JSON API and the HTML pages."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Sign-in machinery, then the blueprints."""
    # each adds its endpoints to the api blueprint (openapi: GET /api/v1/openapi.json)
    from rulewatch.web import api_access, api_datasources, api_drafts, api_reports, openapi  # noqa: F401
    from rulewatch.web.api import api
    from rulewatch.web.auth import init_app as init_auth
    from rulewatch.web.database_down import init_app as init_database_down
    from rulewatch.web.metrics import metrics
    from rulewatch.web.pages import pages
    from rulewatch.web.ui import init_app as init_ui

    init_auth(app)
    init_database_down(app)
    app.register_blueprint(api)
    app.register_blueprint(pages)
    app.register_blueprint(metrics)
    init_ui(app)
