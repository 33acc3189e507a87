"""GET /api/v1/openapi.json: public, complete, and generated from the code it describes."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask

from rulewatch.schemas import MaintenanceSpec, RuleSpec
from rulewatch.web import openapi
from rulewatch.web.api_models import NewToken, NewUser
from rulewatch.web.openapi import api_routes, undocumented

DOCUMENT = "/api/v1/openapi.json"


def _document(app: Flask) -> dict[str, Any]:
    response = app.test_client(token=None).get(DOCUMENT)
    assert response.status_code == 200, response.get_json()
    document: dict[str, Any] = response.get_json()
    return document


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def _schema_name(holder: dict[str, Any]) -> str:
    ref: str = holder["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_it_serves_the_document_to_anyone_without_signing_in(app: Flask) -> None:
    document = _document(app)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "rulewatch API"
    assert _operations(document)[("GET", DOCUMENT)]["security"] == []


def test_the_document_is_valid_openapi_3_1(app: Flask) -> None:
    schemathesis.openapi.from_wsgi(DOCUMENT, app).validate()  # against the OpenAPI meta-schema


def test_every_api_endpoint_is_documented_next_to_its_route(app: Flask) -> None:
    missing = undocumented(app)
    assert not missing, (
        "these /api/v1 endpoints declare no @documented(...) beside their @role(...), so the"
        " OpenAPI document leaves them out:\n  " + "\n  ".join(missing)
    )


def test_it_documents_every_routed_operation_and_no_other(app: Flask) -> None:
    routed = {(r.method, r.path) for r in api_routes(app)}
    assert set(_operations(_document(app))) == routed
    assert len(routed) >= 25


def test_it_adds_an_endpoint_routed_later_and_declares_none_for_a_forgotten_one(
    app: Flask,
) -> None:
    app.add_url_rule("/api/v1/forgotten", "api.forgotten", lambda: "reached")
    assert undocumented(app) == ["GET /api/v1/forgotten (api.forgotten)"]
    assert "/api/v1/forgotten" not in openapi.build_document(app)["paths"]


def test_it_builds_the_document_once_per_process(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = []
    real = openapi.build_document
    monkeypatch.setattr(openapi, "build_document", lambda a: built.append(1) or real(a))
    assert _document(app) == _document(app)
    assert built == [1]


def test_request_bodies_are_the_models_the_handlers_validate_with(app: Flask) -> None:
    document = _document(app)
    operations = _operations(document)
    schemas = document["components"]["schemas"]
    for key, model in [
        (("POST", "/api/v1/rules"), RuleSpec),
        (("POST", "/api/v1/maintenance"), MaintenanceSpec),
        (("POST", "/api/v1/users"), NewUser),
        (("POST", "/api/v1/tokens"), NewToken),
    ]:
        name = _schema_name(operations[key]["requestBody"])
        assert name == model.__name__, key
        assert set(schemas[name]["properties"]) == set(model.model_fields), key
    patch = operations[("PATCH", "/api/v1/rules/{rule_id}")]["requestBody"]
    change = schemas[_schema_name(patch)]
    assert change["properties"] == schemas["RuleSpec"]["properties"]
    assert "required" not in change, "a PATCH sends any of the fields"


def test_a_rule_target_is_documented_as_the_target_of_each_kind(app: Flask) -> None:
    target = _document(app)["components"]["schemas"]["RuleSpec"]["properties"]["target"]
    titles = [option["title"] for option in target["anyOf"]]
    assert titles == ["HttpTarget", "SqlTarget", "TcpTarget"]


def test_every_error_status_answers_the_error_body(app: Flask) -> None:
    document = _document(app)
    responses = document["components"]["responses"]
    for (method, path), operation in _operations(document).items():
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                name = answer["$ref"].rsplit("/", 1)[-1]
                assert _schema_name(responses[name]) == "ErrorBody", (method, path, status)
    assert responses["Unauthenticated"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["TooManyAttempts"]["headers"]["Retry-After"]["required"] is True


def test_it_declares_bearer_tokens_and_the_session_cookie(app: Flask) -> None:
    document = _document(app)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie"}
    assert document["security"] == [{"bearer": []}, {"session": []}]
    sign_in = _operations(document)[("POST", "/api/v1/session")]
    assert sign_in["security"] == [] and sign_in["x-required-role"] == "public"
    assert _operations(document)[("GET", "/api/v1/users")]["x-required-role"] == "admin"


def test_each_integer_parameter_has_the_limits_its_view_enforces(app: Flask) -> None:
    client = app.test_client()
    checked = 0
    for (method, path), operation in _operations(_document(app)).items():
        if method != "GET" or "{" in path:
            continue
        for parameter in operation["parameters"]:
            schema = parameter["schema"]
            if parameter["in"] != "query" or schema.get("type") != "integer":
                continue
            name, low, high = parameter["name"], schema["minimum"], schema["maximum"]
            for value in (low, high):
                response = client.get(path, query_string={name: value})
                assert response.status_code == 200, (path, name, value, response.get_json())
            for value in (low - 1, high + 1):
                response = client.get(path, query_string={name: value})
                assert response.status_code == 400, (path, name, value)
                assert response.get_json()["error"]["errors"][0]["field"] == name
            checked += 1
    assert checked >= 7
