"""Users: created, listed, changed and deleted; passwords hashed with argon2id and checked."""

from __future__ import annotations

import functools
import secrets
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rulewatch.domain.access import (
    MAX_PASSWORD,
    name_problem,
    normal_name,
    password_problem,
    role_problem,
)
from rulewatch.models import User
from rulewatch.schemas import FieldError, InputInvalid
from rulewatch.shapes import UserOut, answer

# argon2-cffi's defaults follow RFC 9106 (argon2id); hashes made with older parameters are
# made again at the next sign-in
HASHER = PasswordHasher()
MAX_USER_ID = 2**31 - 1


class UserInvalid(InputInvalid):
    """A user's name, role or password failed validation."""

    what = "user"


class UserNotFound(LookupError):
    """No user has that id or name."""


class LastAdmin(Exception):
    """The change would leave no admin, and so no one able to manage users."""


def user_to_dict(user: User) -> dict[str, Any]:
    """The API form: never the password hash."""
    return answer(
        UserOut, id=user.id, name=user.name, role=user.role, created_at=user.created_at,
        last_login_at=user.last_login_at,
    )  # fmt: skip


def generate_password() -> str:
    """A random password of 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def create_user(session: Session, name: Any, role: Any, password: Any, now: datetime) -> User:
    """Validate and store a new user; raise UserInvalid naming every bad field."""
    errors = [
        FieldError(field, problem)
        for field, problem in (
            ("name", name_problem(name)),
            ("role", role_problem(role)),
            ("password", password_problem(password)),
        )
        if problem
    ]
    if not errors and _find(session, name) is not None:
        errors.append(FieldError("name", f"a user named {normal_name(name)!r} already exists"))
    if errors:
        raise UserInvalid(errors)
    user = User(name=normal_name(name), role=role, password_hash=HASHER.hash(password),
                created_at=now)  # fmt: skip
    session.add(user)
    session.flush()
    return user


def has_users(session: Session) -> bool:
    """True once any user exists."""
    return session.scalar(select(User.id).limit(1)) is not None


def ensure_first_admin(session: Session, password: str, now: datetime) -> User | None:
    """With no user yet, create ``admin`` with ``password``; None when users exist already."""
    if has_users(session):
        return None
    return create_user(session, "admin", "admin", password, now)


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.name)))


def get_user(session: Session, key: int | str) -> User:
    """A user by id, or by name when ``key`` is not a number."""
    user = None
    if isinstance(key, int) or (key.isascii() and key.isdecimal() and len(key) <= 10):
        user_id = int(key)
        user = session.get(User, user_id) if 1 <= user_id <= MAX_USER_ID else None
    if user is None and isinstance(key, str):
        user = _find(session, key)
    if user is None:
        raise UserNotFound(f"no user with id or name {key!r}")
    return user


def _find(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == normal_name(name)))


def verify_password(session: Session, name: Any, password: Any, now: datetime) -> User | None:
    """The user whose name and password these are, or None, taking as long either way.

    A match records the sign-in and rehashes a password hashed with older parameters.
    """
    user = _find(session, name) if isinstance(name, str) and len(name) <= 64 else None
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        password = ""
    if user is None:
        _matches(_decoy_hash(), password)  # as slow as a real check: no hint the name is unknown
        return None
    if not _matches(user.password_hash, password):
        return None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    user.last_login_at = now
    return user


def _matches(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _decoy_hash() -> str:
    """A hash to check against when the user does not exist."""
    return HASHER.hash(generate_password())


def end_sessions(session: Session, user_id: int) -> None:
    """End every session of the user: their cookies' fingerprint no longer matches."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_epoch=func.coalesce(User.session_epoch, 0) + 1)
    )


def change_user(session: Session, user: User, data: dict[str, Any]) -> User:
    """Change a user's role and/or password; refuse to demote the last admin."""
    unknown = sorted(set(data) - {"role", "password"})
    errors = [FieldError(f, "not a field of a user (role, password)") for f in unknown]
    if "role" in data and (problem := role_problem(data["role"])):
        errors.append(FieldError("role", problem))
    if "password" in data and (problem := password_problem(data["password"])):
        errors.append(FieldError("password", problem))
    if errors:
        raise UserInvalid(errors)
    if "role" in data:
        if user.role == "admin" and data["role"] != "admin":
            _ensure_another_admin(session, user)
        user.role = data["role"]
    if "password" in data:
        user.password_hash = HASHER.hash(data["password"])
    return user


def delete_user(session: Session, user: User) -> None:
    """Delete a user and their tokens; refuse to delete the last admin."""
    if user.role == "admin":
        _ensure_another_admin(session, user)
    session.delete(user)


def _ensure_another_admin(session: Session, user: User) -> None:
    others = session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.id != user.id)
    )
    if not others:
        raise LastAdmin(
            f"{user.name!r} is the last admin: make another user admin first, or no one could"
            " manage users and tokens"
        )
