"""Property-based fuzzing of every /api/v1 operation from the OpenAPI document (schemathesis).

Requests are generated from the document (valid and invalid ones) and sent to the app in
process (WSGI, no server) as an admin; each answer must not be a 5xx and must match the
document: a documented status, content type, headers and body. Bounded and derandomized, so
a run takes the same cases every time and fits in CI. Each operation is driven through its
Hypothesis strategy rather than ``schema.parametrize()``, whose pytest plugin (schemathesis
4.32) reads ``Item._nodeid``, which pytest 9 no longer has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from rulewatch.db import transaction
from rulewatch.models import User
from tests.api.sample_data import Sample, make_sample
from tests.auth import token_for

FUZZER = "fuzz-admin"
MAX_EXAMPLES = 15  # per operation and mode: the whole test stays near a minute
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CONFIG = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "database": "none", "with-security-parameters": False},
})  # fmt: skip


def _admin_token(app: Flask) -> str:
    """A fresh token of an admin: a generated request may have demoted or deleted the last."""
    with transaction(app.extensions["rulewatch"].factory) as session:
        user = session.scalar(select(User).where(User.name == FUZZER))
        if user is not None:
            user.role = "admin"
    return token_for(app, FUZZER, "admin")


def _fuzz(app: Flask, strategy: Any, max_examples: int = MAX_EXAMPLES) -> None:
    @given(case=strategy)
    @settings(
        max_examples=max_examples, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def run(case: Any) -> None:
        headers = {"Authorization": f"Bearer {_admin_token(app)}"}
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def _cases(operations: list[Any], sample: Sample) -> Iterator[tuple[str, Any, int]]:
    """(what, strategy, examples): each operation with valid and invalid data; then those
    with ids in their path once more with the sample's ids (random ids find nothing), the
    deletes last so that the others find what they look for."""
    for operation in operations:
        for mode in GenerationMode:
            yield (
                f"{operation.label} ({mode.value} data)",
                operation.as_strategy(mode),
                MAX_EXAMPLES,
            )
    known = {"rule_id": sample.rule_id, "window_id": sample.window_id,
             "token_id": sample.token_id, "user_id": sample.user_id}  # fmt: skip
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        names = {p.name for p in operation.path_parameters}
        if names and names <= set(known):
            ids = {name: known[name] for name in names}
            strategy = operation.as_strategy(path_parameters=ids)
            yield f"{operation.label} ({ids})", strategy, MAX_EXAMPLES // 2


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_every_operation_answers_as_documented_and_never_with_a_5xx(app: Flask) -> None:
    sample = make_sample(app)
    api_schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25
    failures = []
    for what, strategy, max_examples in _cases(operations, sample):
        try:
            _fuzz(app, strategy, max_examples)
        except Unsatisfiable:  # nothing to make invalid: no parameters, no body
            assert "negative" in what, what
        except Exception as exc:  # every operation is tried; all failures are reported
            failures.append(f"{what}:\n{exc}")
    assert not failures, "\n\n".join(failures)
