"""Who calls the API and whether their role may: sessions, bearer tokens, roles per endpoint.

Every API endpoint declares the role it needs with ``@role(...)`` (or ``PUBLIC``); the api
blueprint's ``authorise`` refuses a caller who is not signed in (401), a role below the one
declared (403), and any endpoint that declares none (403: fail closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, current_app, request
from flask import session as cookie_session
from flask_login import LoginManager, current_user, login_user, logout_user

from rulewatch.db import transaction
from rulewatch.domain.access import may
from rulewatch.models import User, utcnow
from rulewatch.runtime import Runtime
from rulewatch.schemas import FieldError
from rulewatch.services.tokens import authenticate_token
from rulewatch.services.users import end_sessions, verify_password
from rulewatch.web.common import rt
from rulewatch.web.errors import ApiError
from rulewatch.web.login_throttle import LoginThrottle, storage_uri

PUBLIC = "public"
ROLE_ATTRIBUTE = "required_role"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_LIFETIME = timedelta(days=7)  # from the last request: each one renews it
View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """The signed-in caller, as Flask-Login sees it: a user, and how they proved it."""

    id: int
    name: str
    role: str
    via: str  # "session" or "token"
    session_id: str = ""
    token_id: int | None = None
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        """What the session cookie keeps: the user id and a fingerprint of their password."""
        return self.session_id


def role(needed: str) -> Callable[[View], View]:
    """Declare the role an API endpoint needs: viewer, editor, admin, or PUBLIC."""

    def declare(view: View) -> View:
        setattr(view, ROLE_ATTRIBUTE, needed)
        return view

    return declare


def required_role(view: Callable[..., Any] | None) -> str | None:
    """The role ``view`` declared, or None when it declared none."""
    needed: str | None = getattr(view, ROLE_ATTRIBUTE, None)
    return needed


def init_app(app: Flask) -> None:
    """Session cookies, Flask-Login's loaders and the sign-in throttle for ``app``."""
    runtime: Runtime = app.extensions["rulewatch"]
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=runtime.settings.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    manager = LoginManager()
    manager.user_loader(_from_session)
    manager.request_loader(_from_bearer_token)
    manager.init_app(app, add_context_processor=False)
    app.extensions["login_throttle"] = LoginThrottle(storage_uri(runtime.settings))


def session_fingerprint(user: User) -> str:
    """Changes with the password and at every sign-out, ending the user's other sessions."""
    seed = f"{user.session_epoch or 0}:{user.password_hash}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def principal_of(user: User, via: str, token_id: int | None = None) -> Principal:
    """The caller ``user`` signed in by ``via``."""
    session_id = f"{user.id}:{session_fingerprint(user)}"
    return Principal(user.id, user.name, user.role, via, session_id, token_id)


def _from_session(session_id: str) -> Principal | None:
    if "Authorization" in request.headers:
        return None  # a request that sends credentials is judged by them alone
    user_id, _, fingerprint = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdecimal() and len(user_id) <= 10):
        return None
    with rt().factory() as session:
        user = session.get(User, int(user_id))
        if user is None or session_fingerprint(user) != fingerprint:
            return None
        return principal_of(user, "session")


def _from_bearer_token(_request: Any) -> Principal | None:
    text = _bearer(request.headers.get("Authorization", ""))
    if text is None:
        return None
    with transaction(rt().factory) as session:
        token = authenticate_token(session, text, utcnow())
        return None if token is None else principal_of(token.user, "token", token.id)


def _bearer(header: str) -> str | None:
    scheme, _, text = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return text.strip() or None


def sign_in(user: User) -> Principal:
    """Start a session for ``user`` (a fresh cookie, kept for SESSION_LIFETIME after use)."""
    principal = principal_of(user, "session")
    cookie_session.clear()
    cookie_session.permanent = True
    login_user(principal)
    return principal


class SignInRefused(Exception):
    """A sign-in that failed: too many attempts (``wait_s`` set) or wrong credentials."""

    def __init__(self, message: str, wait_s: int = 0) -> None:
        super().__init__(message)
        self.wait_s = wait_s


WRONG_CREDENTIALS = "the username or password is wrong"


def password_sign_in(name: str, password: str) -> Principal:
    """Check ``name`` and ``password`` under the sign-in throttle and start a session.

    The API's ``POST /api/v1/session`` and the login form both come through here.
    """
    throttle: LoginThrottle = current_app.extensions["login_throttle"]
    address = request.remote_addr or "unknown"
    wait = throttle.attempt(address, name)
    if wait:
        message = f"too many sign-in attempts from this address: try again in {wait} s"
        raise SignInRefused(message, wait)
    with transaction(rt().factory) as session:
        user = verify_password(session, name, password, utcnow())
        principal = sign_in(user) if user is not None else None
    if principal is None:
        raise SignInRefused(WRONG_CREDENTIALS)
    throttle.succeeded(address, name)
    return principal


def sign_out() -> None:
    """End the caller's sessions: this cookie, any copy of it, and the user's other sessions
    (their fingerprint changes), so a stolen cookie dies with the sign-out."""
    if current_user.is_authenticated and caller().via == "session":
        user_id = caller().id
        with transaction(rt().factory) as session:
            end_sessions(session, user_id)
    logout_user()
    cookie_session.clear()


def caller() -> Principal:
    """The signed-in caller of this request (``authorise`` has made sure there is one)."""
    principal: Principal = current_user._get_current_object()
    return principal


def authorise() -> None:
    """Before every API request: signed in, not a cross-site form post, a role that may."""
    needed = required_role(current_app.view_functions.get(request.endpoint or ""))
    if needed == PUBLIC:
        return
    if not current_user.is_authenticated:
        raise _unauthenticated()
    user = caller()
    if user.via == "session" and request.method in UNSAFE_METHODS and not request.is_json:
        raise ApiError(
            415, "json_required",
            "a change made with a session cookie must be sent as Content-Type: application/json"
            " (this keeps other sites' forms out); scripts should send a bearer token instead",
            [FieldError("Content-Type", f"got {request.mimetype or 'none'!r}")],
        )  # fmt: skip
    if needed is None or not may(user.role, needed):
        raise _forbidden(user, needed)


def _forbidden(user: Principal, needed: str | None) -> ApiError:
    if needed is None:  # fail closed: an endpoint someone forgot to declare
        return ApiError(403, "forbidden", f"{request.endpoint} declares no role: no one may use it")
    message = f"this needs the {needed} role or above; {user.name!r} has the {user.role} role"
    return ApiError(403, "forbidden", f"{message}: ask an admin",
                    details={"required_role": needed, "role": user.role})  # fmt: skip


def _unauthenticated() -> ApiError:
    header = request.headers.get("Authorization")
    if header is None:
        problem, error = "missing", ""
        message = (
            "sign in first: send Authorization: Bearer <token> (`rulewatch tokens create`)"
            " or sign in with POST /api/v1/session"
        )
    elif _bearer(header) is None:
        problem, error = "not 'Bearer <token>'", ', error="invalid_request"'
        message = "the Authorization header must be 'Bearer <token>'"
    else:
        problem, error = "unknown or revoked token", ', error="invalid_token"'
        message = (
            "this bearer token is unknown or revoked, or its user was deleted:"
            " ask an admin for a new one"
        )
    return ApiError(401, "unauthenticated", message, [FieldError("Authorization", problem)],
                    headers={"WWW-Authenticate": f'Bearer realm="rulewatch"{error}'})  # fmt: skip
