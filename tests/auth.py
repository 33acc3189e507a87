"""Signed-in test clients: a user and a bearer token per app, sent by every client it makes.

``sign_in_test_clients(app)`` makes ``app.test_client()`` send an admin's token;
``app.test_client(token=None)`` is anonymous and ``app.test_client(token=t)`` sends ``t``.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.datastructures import Headers

from rulewatch.db import transaction
from rulewatch.models import User, utcnow
from rulewatch.services.tokens import create_token
from rulewatch.services.users import HASHER

PASSWORD = "correct horse battery staple"
_DEFAULT: Any = object()


@functools.cache
def _password_hash() -> str:
    return HASHER.hash(PASSWORD)  # once per test run: argon2 takes a tenth of a second


def add_user(app: Flask, name: str, role: str) -> int:
    """A user of ``role`` whose password is PASSWORD (the one existing by that name, if any)."""
    with transaction(app.extensions["rulewatch"].factory) as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            user = User(name=name, role=role, password_hash=_password_hash(), created_at=utcnow())
            session.add(user)
            session.flush()
        return user.id


def token_for(app: Flask, name: str, role: str = "admin") -> str:
    """A new bearer token for user ``name`` (made with ``role`` if it does not exist)."""
    add_user(app, name, role)
    with transaction(app.extensions["rulewatch"].factory) as session:
        user = session.scalar(select(User).where(User.name == name))
        assert user is not None
        return create_token(session, user, "tests", utcnow())[1]


class TokenClient(FlaskClient):
    """A test client that sends ``Authorization: Bearer <token>`` unless the request has one."""

    default_token: str | None = None

    def __init__(self, *args: Any, token: str | None = _DEFAULT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = self.default_token if token is _DEFAULT else token

    def open(self, *args: Any, **kwargs: Any) -> Any:
        """Add the token to a request made from a path (redirects carry their headers on)."""
        if self.token and (not args or isinstance(args[0], str)):
            headers = Headers(kwargs.get("headers"))
            headers.setdefault("Authorization", f"Bearer {self.token}")
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)


def sign_in_test_clients(app: Flask, role: str = "admin") -> str:
    """Make every ``app.test_client()`` send a token of a ``role`` user; returns the token."""
    token = token_for(app, f"test-{role}", role)
    app.test_client_class = type("SignedInClient", (TokenClient,), {"default_token": token})
    return token
