"""Accept only a single read-only SELECT (or WITH ... SELECT) statement, before it ever runs."""

from __future__ import annotations

from typing import Any

import sqlparse
from sqlparse import tokens as T
from sqlparse.sql import Statement, Token

# INTO turns a SELECT into a write (``SELECT ... INTO new_table``, ``INTO OUTFILE``).
_FORBIDDEN_KEYWORDS = frozenset({"INTO"})
_NOISE = (T.Whitespace, T.Newline, T.Comment, T.Punctuation)


def validate_select(query: str) -> None:
    """Raise ValueError unless ``query`` is exactly one SELECT or WITH ... SELECT statement."""
    statements = [s for s in sqlparse.parse(query) if _meaningful(s)]
    if not statements:
        raise ValueError("the query is empty: write one SELECT statement")
    if len(statements) > 1:
        raise ValueError(
            f"only one statement is allowed, found {len(statements)}: "
            "remove the extra statements (and any ';' between them)"
        )
    _check_starts_with_select(statements[0])
    _check_no_writes(statements[0])


def _meaningful(statement: Statement) -> bool:
    return any(not _is_noise(token) for token in _tokens(statement))


def _is_noise(token: Token) -> bool:
    return any(token.ttype in kind for kind in _NOISE)


def _check_starts_with_select(statement: Statement) -> None:
    first = next(t for t in _tokens(statement) if not _is_noise(t))
    if first.ttype in T.Keyword.CTE or (first.ttype in T.DML and first.normalized == "SELECT"):
        return
    raise ValueError(
        f"only SELECT (or WITH ... SELECT) queries are allowed; this one starts with "
        f"{first.value!r}"
    )


def _check_no_writes(statement: Statement) -> None:
    position = 0
    for token in _tokens(statement):
        if _writes(token):
            raise ValueError(
                f"{token.normalized} is not allowed in a read-only query "
                f"(at character {position + 1}); if it is a column or table name, quote it"
            )
        position += len(token.value)


def _writes(token: Token) -> bool:
    if token.ttype in T.DML:
        return bool(token.normalized != "SELECT")
    if token.ttype in T.DDL or token.ttype in T.Keyword.DCL:
        return True
    return bool(token.ttype in T.Keyword and token.normalized in _FORBIDDEN_KEYWORDS)


def _tokens(statement: Any) -> list[Token]:
    """The statement's leaf tokens (sqlparse leaves ``flatten`` untyped)."""
    return list(statement.flatten())
