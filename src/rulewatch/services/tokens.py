"""Bearer tokens: created (the text shown once), listed, revoked, and checked per request.

A token is 256 random bits, so its SHA-256 is stored and looked up directly: a slow password
hash would add nothing but latency to every API call.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from rulewatch.models import ApiToken, User
from rulewatch.schemas import FieldError, InputInvalid
from rulewatch.shapes import TokenOut, answer

PREFIX = "rw_"
SHOWN_CHARS = 10  # "rw_" and 7 more: enough to tell tokens apart in a listing
MAX_TOKEN_LENGTH = 200
MAX_LABEL = 100
MAX_TOKEN_ID = 2**31 - 1
# last_used_at is a hint for people, not an audit log: one write a minute per token at most
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenInvalid(InputInvalid):
    """A token's fields failed validation."""

    what = "token"


class TokenNotFound(LookupError):
    """No token has that id or prefix."""


def token_hash(text: str) -> str:
    """How a token is stored: the hex SHA-256 of its text."""
    return hashlib.sha256(text.encode()).hexdigest()


def token_to_dict(token: ApiToken) -> dict[str, Any]:
    """The API form: the prefix, never the token or its hash."""
    return answer(
        TokenOut, id=token.id, user=token.user.name, user_id=token.user_id, label=token.label,
        prefix=token.prefix, created_at=token.created_at, last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )  # fmt: skip


def create_token(session: Session, user: User, label: Any, now: datetime) -> tuple[ApiToken, str]:
    """Store a new token for ``user``; returns it with its text, which is never stored."""
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise TokenInvalid(
            [FieldError("label", f"a label is text of at most {MAX_LABEL} characters")]
        )
    text = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, label=label or None, token_hash=token_hash(text),
                     prefix=text[:SHOWN_CHARS], created_at=now)  # fmt: skip
    session.add(token)
    session.flush()
    return token, text


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    """Tokens, newest first, revoked ones included; only ``user``'s when given."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.scalars(query))


def find_token(session: Session, key: str) -> ApiToken:
    """A token by id, by its shown prefix (when only one token has it) or by its whole text."""
    token = None
    if key.isascii() and key.isdecimal() and len(key) <= 10:
        token = session.get(ApiToken, int(key)) if 1 <= int(key) <= MAX_TOKEN_ID else None
    elif len(key) == SHOWN_CHARS:
        matches = list(session.scalars(select(ApiToken).where(ApiToken.prefix == key)))
        if len(matches) > 1:
            ids = ", ".join(str(t.id) for t in matches)
            raise TokenNotFound(f"{len(matches)} tokens start with {key!r}: give its id ({ids})")
        token = matches[0] if matches else None
    elif len(key) <= MAX_TOKEN_LENGTH:
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(key)))
    if token is None:
        shown = key if len(key) <= SHOWN_CHARS else key[:SHOWN_CHARS] + "..."
        raise TokenNotFound(
            f"no token has the id, prefix or text {shown!r}: give an id or prefix that"
            " `rulewatch tokens list` shows"
        )
    return token


def revoke_token(token: ApiToken, now: datetime) -> bool:
    """Revoke ``token`` from now on; False when it already was."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = now
    return True


def authenticate_token(session: Session, text: str, now: datetime) -> ApiToken | None:
    """The live token with this text (its user loaded), or None when unknown or revoked."""
    if not text.startswith(PREFIX) or len(text) > MAX_TOKEN_LENGTH:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(text)))
    if token is None or token.revoked_at is not None:
        return None
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at <= stale:
        # conditional, so that web processes racing on one token write it once
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == token.id)
            .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale))
            .values(last_used_at=now)
        )
    return token
