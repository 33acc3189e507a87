"""The web UI: server-rendered Jinja2 pages behind a session, with forms under CSRF tokens.

Every page needs a signed-in user except the login page; a page may ask for a role with
``@page_role``. Each view module adds its routes to the ``ui`` blueprint.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, redirect, render_template, request
from flask import url_for as flask_url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from rulewatch.domain.access import may
from rulewatch.models import utcnow
from rulewatch.web.auth import Principal, caller
from rulewatch.web.common import rt

ui = Blueprint("ui", __name__)
OPEN_ENDPOINTS = frozenset({"ui.login", "static"})
View = TypeVar("View", bound=Callable[..., Any])

# Scripts and styles only from this server, no inline script, no framing, forms post here.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def init_app(app: Flask) -> None:
    """CSRF protection for the pages' forms, security headers on every answer, the views."""
    from rulewatch.web.ui import (  # noqa: F401  (each adds its pages to the blueprint)
        views_admin,
        views_editor,
        views_monitoring,
        views_report,
        views_rules,
        views_session,
    )

    app.config["WTF_CSRF_TIME_LIMIT"] = None  # valid as long as the session (CSRFProtect sets 1 h)
    csrf = CSRFProtect(app)
    for name in ("api", "metrics"):  # the API refuses cross-site forms itself (JSON only)
        csrf.exempt(app.blueprints[name])
    app.after_request(_security_headers)
    app.register_blueprint(ui)
    app.jinja_env.globals.update(may=_may, me=_me)
    app.jinja_env.filters.update(ago=ago, percent=percent)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if rt().settings.base_url.startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if response.mimetype == "text/html" and request.blueprint == "ui":
        response.headers.setdefault("Cache-Control", "no-store")  # pages show private data
    return response


@ui.before_request
def _signed_in() -> ResponseReturnValue | None:
    """Every page but the login page needs a session: go and sign in, then come back."""
    if request.endpoint in OPEN_ENDPOINTS or current_user.is_authenticated:
        return None
    target = request.full_path if request.method == "GET" else None
    return redirect(flask_url_for("ui.login", next=target.rstrip("?") if target else None))


@ui.app_errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> tuple[str, int]:
    message = f"{exc.description} Go back, reload the page and send the form again."
    return render_template("ui/error.html", title="Form expired", message=message), 400


def page_role(needed: str) -> Callable[[View], View]:
    """A page for ``needed`` (viewer, editor, admin) and above; others get a 403 page."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = caller()
            if not may(user.role, needed):
                message = (
                    f"This page needs the {needed} role or above; you have the {user.role} role."
                    " Ask an admin."
                )
                return render_template("ui/error.html", title="Not allowed", message=message), 403
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def page_number(text: str | None) -> int:
    """A ``?page=`` value: a whole number from 1 to 999,999, else 1."""
    text = text or ""
    if text.isascii() and text.isdecimal() and len(text) < 7 and int(text) > 0:
        return int(text)
    return 1


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not target:
        return flask_url_for("ui.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or "\\" in target:
        return flask_url_for("ui.dashboard")
    return target if not target.startswith("//") else flask_url_for("ui.dashboard")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was, in the largest unit that fits: "42 s ago", "3 h ago"."""
    if moment is None:
        return "never"
    seconds = ((now or utcnow()) - moment).total_seconds()
    if seconds < 0:
        return "in the future"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def percent(rate: float | None, digits: int = 2) -> str:
    """A rate from 0 to 1 as a percentage ("99.95%"), or "no data"."""
    if rate is None:
        return "no data"
    return f"{rate * 100:.{digits}f}%"


def _may(needed: str) -> bool:
    return bool(current_user.is_authenticated and may(caller().role, needed))


def _me() -> Principal | None:
    return caller() if current_user.is_authenticated else None
