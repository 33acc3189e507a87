"""Every answer is its documented shape: no field answered that the document lacks, none missing.

The answers are serialised through the models of ``rulewatch.shapes`` and the document is
generated from them; these tests hold the two together from the outside: each documented
operation is called with real rows and its answer checked against the document, whose
answer objects are all closed (``additionalProperties: false``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from schemathesis.openapi.checks import JsonSchemaError
from werkzeug.test import TestResponse

from rulewatch.models import Verification
from rulewatch.services.verification import Job, verification_to_dict, verify_jobs
from rulewatch.shapes import (
    DraftVerification,
    FieldProblem,
    StabilityOut,
    VerificationOut,
    answer,
)
from tests.api.sample_data import Sample, make_sample
from tests.auth import PASSWORD, add_user, token_for

DOCUMENT = "/api/v1/openapi.json"
SCHEMAS = "#/components/schemas/"
Call = Callable[[FlaskClient, Sample], TestResponse]
RULE = {"name": "shape check", "kind": "tcp", "target": {"host": "127.0.0.1", "port": 9},
        "conditions": ["[CONNECTED] == true"], "interval_s": 60}  # fmt: skip
WINDOW = {"name": "shape window", "starts_at": "2030-01-01T00:00:00+00:00", "duration_s": 600}

# One real call per documented operation that answers JSON (204s have no body to check).
CALLS: dict[tuple[str, str], Call] = {
    ("GET", "/api/v1/rules"): lambda c, s: c.get("/api/v1/rules?tag=payments"),
    ("POST", "/api/v1/rules"): lambda c, s: c.post("/api/v1/rules", json=RULE),
    ("POST", "/api/v1/rules/import"): lambda c, s: c.post(
        "/api/v1/rules/import", json={"rules": [{**RULE, "name": "imported"}]}
    ),
    ("GET", "/api/v1/rules/{rule_id}"): lambda c, s: c.get(f"/api/v1/rules/{s.rule_id}"),
    ("PATCH", "/api/v1/rules/{rule_id}"): lambda c, s: c.patch(
        f"/api/v1/rules/{s.tcp_rule_id}", json={"enabled": False}
    ),
    ("GET", "/api/v1/rules/{rule_id}/verifications"): lambda c, s: c.get(
        f"/api/v1/rules/{s.rule_id}/verifications"
    ),
    ("GET", "/api/v1/rules/{rule_id}/gaps"): lambda c, s: c.get(f"/api/v1/rules/{s.rule_id}/gaps"),
    ("POST", "/api/v1/rules/{rule_id}/verify"): lambda c, s: c.post(
        f"/api/v1/rules/{s.rule_id}/verify"
    ),
    ("POST", "/api/v1/rules/try"): lambda c, s: c.post("/api/v1/rules/try", json=RULE),
    ("POST", "/api/v1/verify-all"): lambda c, s: c.post("/api/v1/verify-all"),
    ("GET", "/api/v1/tasks/{task_id}"): lambda c, s: c.get(f"/api/v1/tasks/{uuid.uuid4()}"),
    ("POST", "/api/v1/conditions/check"): lambda c, s: c.post(
        "/api/v1/conditions/check", json={"kind": "http", "conditions": ["[STATUS] = 2"]}
    ),
    ("GET", "/api/v1/stability"): lambda c, s: c.get("/api/v1/stability?order=worst"),
    ("POST", "/api/v1/reports"): lambda c, s: c.post("/api/v1/reports", json={"window": "7d"}),
    ("GET", "/api/v1/reports/{task_id}"): lambda c, s: c.get(
        f"/api/v1/reports/{c.post('/api/v1/reports').get_json()['task_id']}"
    ),
    ("GET", "/api/v1/notifications"): lambda c, s: c.get("/api/v1/notifications"),
    ("GET", "/api/v1/incidents"): lambda c, s: c.get("/api/v1/incidents"),
    ("GET", "/api/v1/maintenance"): lambda c, s: c.get("/api/v1/maintenance"),
    ("POST", "/api/v1/maintenance"): lambda c, s: c.post("/api/v1/maintenance", json=WINDOW),
    ("GET", "/api/v1/maintenance/{window_id}"): lambda c, s: c.get(
        f"/api/v1/maintenance/{s.window_id}"
    ),
    ("PATCH", "/api/v1/maintenance/{window_id}"): lambda c, s: c.patch(
        f"/api/v1/maintenance/{s.window_id}", json={"comment": "moved"}
    ),
    ("PUT", "/api/v1/datasources/{name}"): lambda c, s: c.put(
        "/api/v1/datasources/shape", json={"dsn": "sqlite://"}
    ),
    ("GET", "/api/v1/datasources"): lambda c, s: c.get("/api/v1/datasources"),
    ("GET", "/api/v1/datasources/{name}"): lambda c, s: c.get("/api/v1/datasources/shape"),
    ("POST", "/api/v1/datasources/{name}/check"): lambda c, s: c.post(
        "/api/v1/datasources/shape/check"
    ),
    ("POST", "/api/v1/session"): lambda c, s: c.post(
        "/api/v1/session", json={"username": "shape-viewer", "password": PASSWORD}
    ),
    ("GET", "/api/v1/me"): lambda c, s: c.get("/api/v1/me"),
    ("GET", "/api/v1/users"): lambda c, s: c.get("/api/v1/users"),
    ("POST", "/api/v1/users"): lambda c, s: c.post(
        "/api/v1/users", json={"name": "shape-editor", "role": "editor"}
    ),
    ("PATCH", "/api/v1/users/{user_id}"): lambda c, s: c.patch(
        f"/api/v1/users/{s.user_id}", json={"role": "editor"}
    ),
    ("GET", "/api/v1/tokens"): lambda c, s: c.get("/api/v1/tokens"),
    ("POST", "/api/v1/tokens"): lambda c, s: c.post("/api/v1/tokens", json={"label": "shape"}),
    ("GET", "/api/v1/openapi.json"): lambda c, s: c.get(DOCUMENT),
}


def _json_operations(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(method, path) of each documented operation with a JSON success answer."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            successes = [r for s, r in operation["responses"].items() if int(s) < 400]
            if any("application/json" in r.get("content", {}) for r in successes):
                yield method.upper(), path


def _answer_schemas(document: dict[str, Any]) -> set[str]:
    """The component schemas that answers (successes and errors) use, nested ones included."""
    responses = [op["responses"] for item in document["paths"].values() for op in item.values()]
    pending = _refs([responses, document["components"]["responses"]])
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending |= _refs(document["components"]["schemas"][name])
    return seen


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, list):
        return set().union(*(_refs(item) for item in schema))
    if not isinstance(schema, dict):
        return set()
    ref = schema.get("$ref")
    own = {ref.removeprefix(SCHEMAS)} if isinstance(ref, str) and ref.startswith(SCHEMAS) else set()
    return own.union(*(_refs(value) for value in schema.values()))


def _open_objects(schema: Any, where: str) -> Iterator[str]:
    """Where an object schema lists properties yet lets others through."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _open_objects(item, f"{where}[{i}]")
    elif isinstance(schema, dict):
        if "properties" in schema and schema.get("additionalProperties") is not False:
            yield where
        for key, value in schema.items():
            yield from _open_objects(value, f"{where}.{key}")


def test_it_answers_every_documented_operation_as_the_document_says(app: Flask) -> None:
    sample = make_sample(app)
    add_user(app, "shape-viewer", "viewer")
    schema = schemathesis.openapi.from_wsgi(DOCUMENT, app)
    operations = set(_json_operations(schema.raw_schema))
    assert operations == set(CALLS), (
        "give each documented operation answering JSON one real call in CALLS: "
        f"missing {sorted(operations - set(CALLS))}, stale {sorted(set(CALLS) - operations)}"
    )
    client = app.test_client()
    for (method, path), call in CALLS.items():
        response = call(client, sample)
        assert response.status_code < 300, (method, path, response.get_json())
        if method == "GET" and "{" not in path:  # a list: an empty one would check nothing
            empty = [k for k, v in response.get_json().items() if isinstance(v, list) and not v]
            assert not empty, f"{path} answered no rows in {empty}"
        schema[path][method].validate_response(response)


def test_it_answers_errors_as_the_document_says(app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi(DOCUMENT, app)
    admin, anonymous = app.test_client(), app.test_client(token=None)
    viewer = app.test_client(token=token_for(app, "shape-viewer", "viewer"))
    me = f"/api/v1/users/{admin.get('/api/v1/me').get_json()['id']}"
    bad = {**RULE, "conditions": ["[X] = 1"]}
    errors = [
        ("POST", "/api/v1/rules", admin.post("/api/v1/rules", json=bad), 422),
        ("POST", "/api/v1/rules", viewer.post("/api/v1/rules", json=RULE), 403),
        ("GET", "/api/v1/rules", anonymous.get("/api/v1/rules"), 401),
        ("GET", "/api/v1/rules/{rule_id}", admin.get("/api/v1/rules/999"), 404),
        ("GET", "/api/v1/rules", admin.get("/api/v1/rules?limit=0"), 400),
        ("PATCH", "/api/v1/users/{user_id}", admin.patch(me, json={"role": "viewer"}), 409),
    ]  # fmt: skip
    for method, path, response, status in errors:
        assert response.status_code == status, (method, path, response.get_json())
        schema[path][method].validate_response(response)
    problem = errors[0][2].get_json()["error"]["errors"][0]
    assert set(problem) == {"field", "message", "position"}
    assert {"required_role", "role"} <= set(errors[1][2].get_json()["error"])


def test_every_object_an_answer_may_hold_is_closed_to_other_fields(app: Flask) -> None:
    document = app.test_client(token=None).get(DOCUMENT).get_json()
    names = _answer_schemas(document) - {"OpenApiDocument"}  # OpenAPI's own, open by design
    assert {"RuleOut", "AlertSpec", "StabilityOut", "RuleRate", "ErrorBody"} <= names
    schemas = document["components"]["schemas"]
    assert [w for n in sorted(names) for w in _open_objects(schemas[n], n)] == []


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda rule: {**rule, "owner": "ops"}, id="a field the document lacks"),
        pytest.param(
            lambda rule: {k: v for k, v in rule.items() if k != "next_due_at"},
            id="a documented field missing",
        ),
        pytest.param(
            lambda rule: {**rule, "alert": {**(rule["alert"] or {}), "pager": True}},
            id="a nested field the document lacks",
        ),
    ],
)
def test_it_catches_an_answer_that_strays_from_the_document(
    app: Flask, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    sample = make_sample(app)
    schema = schemathesis.openapi.from_wsgi(DOCUMENT, app)
    real = app.test_client().get(f"/api/v1/rules/{sample.rule_id}")
    schema["/api/v1/rules/{rule_id}"]["GET"].validate_response(real)
    real.set_data(json.dumps(change(real.get_json())))
    with pytest.raises(JsonSchemaError):
        schema["/api/v1/rules/{rule_id}"]["GET"].validate_response(real)


def test_the_hot_path_verification_dict_is_exactly_its_model(app: Flask) -> None:
    sample = make_sample(app)
    runtime = app.extensions["rulewatch"]
    [result] = verify_jobs(runtime.factory, [Job(sample.rule_id, str(uuid.uuid4()))],
                           runtime.probe_context())  # fmt: skip
    with runtime.factory() as session:
        row = session.get(Verification, result["id"])
        assert row is not None
        columns = {c.key: getattr(row, c.key) for c in Verification.__table__.columns}
    by_model = answer(VerificationOut, **columns, rule_name="orders API")
    assert result == verification_to_dict(row, "orders API") == by_model
    assert list(result) == list(VerificationOut.model_fields)
    VerificationOut.model_validate(result)  # every field of its type, no other field
    assert set(DraftVerification.model_fields) < set(VerificationOut.model_fields)


AT = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
RATE = {"rule_id": 7, "name": "orders", "pass": 9, "fail": 1, "error": 0,
        "maintenance": 2, "rate": 0.9, "target": 0.99, "meets_target": False,
        "error_budget_left": -9.0, "unmonitored_s": 61.5}  # fmt: skip
OVERALL = {"pass": 9, "fail": 1, "error": 0, "maintenance": 2, "rate": 0.9, "rules": 1,
           "rules_with_data": 1, "rules_meeting_target": 0}  # fmt: skip
REPORT = {"window": "7d", "start": AT, "end": AT, "tag": None, "overall": OVERALL,
          "total": 1, "limit": None, "offset": 0, "rules": [RATE]}  # fmt: skip


def test_it_serialises_a_dict_as_the_model_itself_would() -> None:
    by_model = StabilityOut.model_validate(REPORT).model_dump(by_alias=True)
    assert answer(StabilityOut, **REPORT) == by_model
    assert by_model["rules"][0]["pass"] == 9 and by_model["start"] == AT.isoformat()


def test_it_answers_only_the_models_fields_and_nests_answers_already_made() -> None:
    answered = answer(StabilityOut, **REPORT, owner="ops")
    assert "owner" not in answered
    assert answer(StabilityOut, **answered) == answered
    assert answer(FieldProblem, field="name", message="missing") == {
        "field": "name",
        "message": "missing",
    }  # the one field it may leave out, left out
