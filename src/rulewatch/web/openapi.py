"""GET /api/v1/openapi.json: the OpenAPI 3.1 document, assembled with apispec.

Built once per process from what is routed and declared: each /api/v1 route's
``@documented`` operation and ``@role``, the pydantic models requests are validated with
(``schemas.py``, ``api_models.py``) and those of the answers (``shapes.py``). Nothing in it is
written by hand but the words.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from apispec import APISpec
from flask import Flask, Response, current_app
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from rulewatch import __version__
from rulewatch.shapes import ErrorBody
from rulewatch.web.api import api
from rulewatch.web.api_models import OpenApiDocument
from rulewatch.web.api_spec import Answer, Operation, documented, operation_of
from rulewatch.web.auth import PUBLIC, UNSAFE_METHODS, required_role, role

OPENAPI_VERSION = "3.1.0"
API_PREFIX = "/api/v1"
REF_TEMPLATE = "#/components/schemas/{model}"
MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns on every database
_PATH_PARAMETER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
DESCRIPTION = (
    "rulewatch verifies rules on a schedule and reports their stability. Every endpoint "
    "but sign-in and this document needs a caller who signed in: a bearer token "
    "(`Authorization: Bearer rw_...`) or the session cookie from POST /api/v1/session; "
    "`x-required-role` names the role each one needs (viewer < editor < admin). Errors are "
    '`{"error": {"code", "message", "errors": [{"field", "message", "position"}]}}`.'
)
# (component name, description, headers) of each error status
ERRORS: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: ("BadRequest", "the body is not a JSON object, a parameter is out of range, or text "
          "holds a NUL character (bad_json, bad_parameter, nul_character)", {}),
    401: ("Unauthenticated", "not signed in, or a bearer token that is unknown or revoked "
          "(unauthenticated, invalid_credentials)",
          {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}),
    403: ("Forbidden", "the caller's role is below the one the endpoint needs (forbidden)", {}),
    404: ("NotFound", "no such thing (not_found)", {}),
    409: ("Conflict", "the change conflicts with what is stored: it would leave no admin "
          "(last_admin), or something still uses what it removes", {}),
    415: ("JsonRequired", "a change made with the session cookie must be sent as "
          "Content-Type: application/json (json_required)", {}),
    422: ("Invalid", "the input is not valid: `errors` names each field at fault, with the "
          "position inside a condition (invalid_rule, invalid_user...)", {}),
    429: ("TooManyAttempts", "too many failed sign-ins: try again after Retry-After seconds "
          "(too_many_attempts)",
          {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0}}}),
    503: ("DatabaseUnavailable", "the database cannot be reached: the message names it; try "
          "again after Retry-After seconds (database_unavailable)",
          {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0}}}),
}  # fmt: skip


@dataclass(frozen=True)
class Route:
    """One method of one /api/v1 URL rule, with the view that answers it."""

    rule: str
    method: str
    endpoint: str
    view: Callable[..., Any]

    @property
    def path(self) -> str:
        """The OpenAPI path: ``<int:rule_id>`` becomes ``{rule_id}``."""
        return _PATH_PARAMETER.sub(r"{\2}", self.rule)

    def label(self) -> str:
        """How a person finds it: method, path and endpoint."""
        return f"{self.method} {self.rule} ({self.endpoint})"


def api_routes(app: Flask) -> Iterator[Route]:
    """Every method of every /api/v1 URL rule of ``app``, in routing order."""
    for rule in app.url_map.iter_rules():
        if rule.rule == API_PREFIX or rule.rule.startswith(API_PREFIX + "/"):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield Route(rule.rule, method, rule.endpoint, app.view_functions[rule.endpoint])


def undocumented(app: Flask) -> list[str]:
    """The /api/v1 routes whose view declares no ``@documented`` operation."""
    return [r.label() for r in api_routes(app) if operation_of(r.view) is None]


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s /api/v1 endpoints (undocumented ones left out)."""
    routes = [(r, op) for r in api_routes(app) if (op := operation_of(r.view)) is not None]
    spec = APISpec(
        title="rulewatch API", version=__version__, openapi_version=OPENAPI_VERSION,
        info={"description": DESCRIPTION}, security=[{"bearer": []}, {"session": []}],
    )  # fmt: skip
    _security_schemes(spec, app.config["SESSION_COOKIE_NAME"])
    refs = _schemas(spec, [op for _, op in routes])
    for name, description, headers in ERRORS.values():
        content = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
        answer = {"description": description, "content": content}
        spec.components.response(name, {**answer, "headers": headers} if headers else answer)
    for path, operations in _by_path(routes, refs).items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _security_schemes(spec: APISpec, cookie: str) -> None:
    spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer",
        "description": "a token from `rulewatch tokens create` or POST /api/v1/tokens",
    })  # fmt: skip
    spec.components.security_scheme("session", {
        "type": "apiKey", "in": "cookie", "name": cookie,
        "description": "from POST /api/v1/session; changes must be sent as JSON",
    })  # fmt: skip


Refs = dict[tuple[Any, JsonSchemaMode], Any]  # a model and a mode: its {"$ref": ...}


def _schemas(spec: APISpec, operations: list[Operation]) -> Refs:
    """Register the models' JSON schemas as components; their refs, by (model, mode)."""
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorBody, "serialization")}
    for op in operations:
        for answer in op.successes().values():
            if isinstance(answer, type):
                wanted.add((answer, "serialization"))
        if op.body is not None:
            wanted.add((op.body, "validation"))
    ordered = sorted(wanted, key=lambda item: (item[0].__name__, item[1]))
    refs, defs = models_json_schema(ordered, ref_template=REF_TEMPLATE)
    for name, schema in defs.get("$defs", {}).items():
        spec.components.schema(name, _without_impossible_defaults(schema))
    partials = {_ref_name(refs[(op.body, "validation")]) for op in operations
                if op.body is not None and op.partial}  # fmt: skip
    for name in sorted(partials):
        partial = copy.deepcopy(defs["$defs"][name])
        partial.pop("required", None)
        partial["title"] = f"{name}Change"
        partial["description"] = f"Any fields of {name}; the result is validated as a whole."
        spec.components.schema(f"{name}Change", partial)
    return refs


def _ref_name(ref: dict[str, str]) -> str:
    return ref["$ref"].rsplit("/", 1)[-1]


def _without_impossible_defaults(schema: Any) -> Any:
    """Drop ``default: null`` where null is not allowed (fields that may only be left out)."""
    if isinstance(schema, list):
        return [_without_impossible_defaults(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _without_impossible_defaults(value) for key, value in schema.items()}
    if out.get("default", ...) is None and not _allows_null(out):
        del out["default"]
    return out


def _allows_null(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(_allows_null(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _by_path(routes: list[tuple[Route, Operation]], refs: Refs) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for route, op in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, op, refs)
    return paths


def _operation(route: Route, op: Operation, refs: Refs) -> dict[str, Any]:
    needed = required_role(route.view)
    summary, _, description = (route.view.__doc__ or route.endpoint).strip().partition("\n")
    out: dict[str, Any] = {
        "operationId": route.endpoint.rpartition(".")[2],
        "summary": summary.strip(),
        "tags": [route.rule.removeprefix(API_PREFIX + "/").split("/")[0]],
        "x-required-role": needed,
        "parameters": _path_parameters(route.rule) + [arg.parameter() for arg in op.query],
        "responses": {
            **{str(status): _success(answer, refs) for status, answer in op.successes().items()},
            **_errors(route, op, needed),
        },
    }
    if description.strip():
        out["description"] = " ".join(description.split())
    if op.body is not None:
        schema = refs[(op.body, "validation")]
        if op.partial:
            schema = f"{_ref_name(schema)}Change"
        content = {"application/json": {"schema": schema}}
        out["requestBody"] = {"required": op.body_required, "content": content}
    if needed == PUBLIC:
        out["security"] = []
    return out


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    out = []
    for converter, name in _PATH_PARAMETER.findall(rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1, "maximum": MAX_ID}
            if converter == "int"
            else {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        )
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _success(answer: Answer, refs: Refs) -> dict[str, Any]:
    if answer is None:
        return {"description": "done (no body)"}
    if isinstance(answer, str):
        return {
            "description": f"a {answer} document",
            "content": {answer: {"schema": {"type": "string"}}},
        }
    description = (answer.__doc__ or answer.__name__).strip().partition("\n")[0]
    content = {"application/json": {"schema": refs[(answer, "serialization")]}}
    return {"description": description, "content": content}


def _errors(route: Route, op: Operation, needed: str | None) -> dict[str, str]:
    statuses = set(op.errors) | {400}  # any request may carry text with a NUL in it
    if needed != PUBLIC:  # who the caller is comes from the database
        statuses |= {401, 403, 503} | ({415} if route.method in UNSAFE_METHODS else set())
    if _PATH_PARAMETER.search(route.rule):
        statuses.add(404)
    return {str(status): ERRORS[status][0] for status in sorted(statuses)}


@api.get("/openapi.json")
@role(PUBLIC)
@documented(OpenApiDocument)
def get_openapi() -> Response:
    """This OpenAPI document, generated from the schemas that validate requests."""
    text = current_app.extensions.get("openapi_json")
    if text is None:
        text = current_app.json.dumps(build_document(current_app))
        current_app.extensions["openapi_json"] = text
    return current_app.response_class(text, mimetype="application/json")
