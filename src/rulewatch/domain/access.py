"""Who may do what: roles in order, and the rules user names and passwords follow."""

from __future__ import annotations

import re

# each role may do everything the roles before it may
ROLES = ("viewer", "editor", "admin")
NAME_RULE = "1 to 64 of the characters A-Z a-z 0-9 _ . @ -"
MIN_PASSWORD = 12
MAX_PASSWORD = 1000  # argon2 would hash more, but no one types it and it costs the server
NAME_PATTERN = r"[A-Za-z0-9_.@-]{1,64}"
_NAME = re.compile(NAME_PATTERN)


def may(role: str, needed: str) -> bool:
    """True when ``role`` is ``needed`` or above it; unknown roles may nothing."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def normal_name(name: str) -> str:
    """A user name as stored and looked up: names are case-insensitive on every database."""
    return name.lower()


def name_problem(name: object) -> str | None:
    """What is wrong with ``name`` as a user name, or None."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"a user name is {NAME_RULE}"
    return None


def role_problem(role: object) -> str | None:
    """What is wrong with ``role``, or None."""
    if role not in ROLES:
        return f"the role must be one of {', '.join(ROLES)}"
    return None


def password_problem(password: object) -> str | None:
    """What is wrong with ``password``, or None."""
    if not isinstance(password, str):
        return "the password must be a string"
    if len(password) < MIN_PASSWORD:
        return f"the password must be at least {MIN_PASSWORD} characters long"
    if len(password) > MAX_PASSWORD:
        return f"the password must be at most {MAX_PASSWORD} characters long"
    return None
