"""HTTP interfaces: the JSON API and the HTML pages."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Sign-in machinery, then the blueprints."""
    from rulewatch.web import api_access  # noqa: F401  (adds its endpoints to the api blueprint)
    from rulewatch.web.api import api
    from rulewatch.web.auth import init_app as init_auth
    from rulewatch.web.pages import pages

    init_auth(app)
    app.register_blueprint(api)
    app.register_blueprint(pages)
