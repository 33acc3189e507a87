"""rulewatch: rule verification and stability monitor on Flask, SQLAlchemy and Celery."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pure domain package must import without Flask
    from flask import Flask

    from rulewatch.config import Settings

__version__ = "0.1.0"


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app and its Celery app from ``settings`` (default: the environment)."""

    from flask import Flask

    from rulewatch import tasks  # noqa: F401  (registers the tasks with Celery)
    from rulewatch.celery_app import celery_init_app
    from rulewatch.config import load_settings, secret_key
    from rulewatch.dispatch import send_outbox_at_commit
    from rulewatch.runtime import Runtime
    from rulewatch.web import init_app as init_web

    settings = settings or load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    # the pages' templates and static files live beside the web code
    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["SECRET_KEY"] = secret_key(settings)  # signs session cookies
    if settings.secret_key_previous:  # cookies signed before a key rotation stay valid
        app.config["SECRET_KEY_FALLBACKS"] = [settings.secret_key_previous]
    # every caller's commits send their outbox rows
    app.extensions["rulewatch"] = Runtime(settings, on_new_factory=send_outbox_at_commit)
    celery_init_app(app, settings)
    init_web(app)
    return app
