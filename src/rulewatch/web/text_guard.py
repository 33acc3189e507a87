"""Refuse the NUL character in API input: PostgreSQL cannot store it in text, so it would 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import request

from rulewatch.schemas import FieldError
from rulewatch.web.errors import ApiError

NUL = "\x00"


def refuse_nul_characters() -> None:
    """Before an API request: 400 naming each parameter or body field whose text holds a NUL."""
    fields = list(dict.fromkeys(name for name, text in _texts() if NUL in text))
    if fields:
        raise ApiError(
            400, "nul_character",
            "text may not contain the NUL character (U+0000): remove it from "
            + ", ".join(fields),
            [FieldError(name, "contains U+0000") for name in fields],
        )  # fmt: skip


def _texts() -> Iterator[tuple[str, str]]:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            yield name, value
    for name, value in request.args.items(multi=True):
        yield name, name
        yield name, value
    if request.is_json:
        yield from _json_texts(_json())


def _json() -> Any:
    try:
        return request.get_json(silent=True)
    except RecursionError:  # json.loads gives up on deep nesting with this, not ValueError
        raise ApiError(400, "bad_json", "the request body is nested too deeply") from None


def _json_texts(document: Any) -> Iterator[tuple[str, str]]:
    """Every string of a JSON document, keys included, with the field path that holds it.

    A loop rather than recursion: the document may be nested as deep as json.loads allows.
    """
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path or "(body)", value
        elif isinstance(value, dict):
            children = [(f"{path}.{key}" if path else str(key), key, item)
                        for key, item in value.items()]  # fmt: skip
            for where, key, _ in children:
                yield where, key
            stack.extend((where, item) for where, _, item in reversed(children))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", value[i]) for i in reversed(range(len(value))))
