"""Roles in order, and the rules user names and passwords follow."""

from __future__ import annotations

import pytest

from rulewatch.domain.access import (
    ROLES,
    may,
    name_problem,
    normal_name,
    password_problem,
    role_problem,
)


def test_each_role_may_what_the_roles_below_it_may() -> None:
    assert [r for r in ROLES if may(r, "viewer")] == ["viewer", "editor", "admin"]
    assert [r for r in ROLES if may(r, "editor")] == ["editor", "admin"]
    assert [r for r in ROLES if may(r, "admin")] == ["admin"]


def test_an_unknown_role_may_nothing() -> None:
    assert not may("root", "viewer")
    assert not may("admin", "public")
    assert role_problem("root") == "the role must be one of viewer, editor, admin"
    assert role_problem("editor") is None


@pytest.mark.parametrize("name", ["a", "ops@example.com", "build-bot_2.0", "x" * 64])
def test_it_accepts_plain_user_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "x" * 65, "two words", "é", "a/b", "a\n", None, 7])
def test_it_refuses_other_user_names(name: object) -> None:
    assert name_problem(name) == "a user name is 1 to 64 of the characters A-Z a-z 0-9 _ . @ -"


def test_it_compares_user_names_without_case() -> None:
    assert normal_name("Alice@Example.com") == "alice@example.com"


def test_it_wants_passwords_of_12_to_1000_characters() -> None:
    assert password_problem("x" * 12) is None
    assert password_problem("x" * 11) == "the password must be at least 12 characters long"
    assert password_problem("x" * 1001) == "the password must be at most 1000 characters long"
    assert password_problem(None) == "the password must be a string"
