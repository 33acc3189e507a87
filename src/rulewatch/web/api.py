"""REST API under /api/v1: thin handlers over the services."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.result import AsyncResult
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from rulewatch.celery_app import priority
from rulewatch.db import transaction
from rulewatch.domain.stability import parse_window
from rulewatch.models import Verification, utcnow
from rulewatch.runtime import Runtime
from rulewatch.schemas import FieldError, InputInvalid, RuleInvalid
from rulewatch.services.alerts import incident_to_dict, recent_incidents
from rulewatch.services.maintenance import (
    MaintenanceNotFound,
    create_window,
    get_window,
    list_windows,
    update_window,
    window_to_dict,
)
from rulewatch.services.notifications import notification_to_dict, recent_notifications
from rulewatch.services.rules import (
    RuleNotFound,
    change_rule,
    create_rule,
    get_rule,
    list_rules,
    remove_rule,
    rule_to_dict,
)
from rulewatch.services.stability import StabilityReport, report_to_dict, stability_report
from rulewatch.services.verification import verification_to_dict
from rulewatch.tasks import enqueue_notifications, time_limits, verify, verify_all_rules
from rulewatch.web.auth import authorise, role
from rulewatch.web.errors import ApiError, error_response

api = Blueprint("api", __name__, url_prefix="/api/v1")
api.before_request(authorise)  # every endpoint: signed in, and a role that may (fail closed)
API_PATHS = "/api/"
# Redis redelivers a message unacknowledged for its visibility timeout (3600 s), and a
# delayed message counts as unacknowledged from the start: longer waits would run twice.
MAX_COUNTDOWN_S = 3300
# plain ASCII digits, few enough for int() to read them at once
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


@api.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int]:
    return error_response(exc)


@api.errorhandler(InputInvalid)
def _input_invalid(exc: InputInvalid) -> tuple[Response, int]:
    code = "invalid_" + exc.what.replace(" ", "_")
    return _api_error(ApiError(422, code, f"the {exc.what} is not valid: {exc}", exc.errors))


@api.errorhandler(RuleNotFound)
@api.errorhandler(MaintenanceNotFound)
def _not_found(exc: LookupError) -> tuple[Response, int]:
    return _api_error(ApiError(404, "not_found", str(exc)))


@api.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response | HTTPException:
    """JSON for every HTTP error under /api/, routing's 404 and 405 included; HTML elsewhere."""
    if not request.path.startswith(API_PATHS):
        return exc
    code = (exc.name or "error").lower().replace(" ", "_")
    response, status = _api_error(ApiError(exc.code or 500, code, exc.description or code))
    response.status_code = status
    for name, value in exc.get_headers():
        if name.lower() != "content-type":  # keeps Allow on a 405, Retry-After on a 429...
            response.headers[name] = value
    return response


def _rt() -> Runtime:
    rt: Runtime = current_app.extensions["rulewatch"]
    return rt


@contextmanager
def _write() -> Iterator[Session]:
    with transaction(_rt().factory) as session:
        yield session


@contextmanager
def _write_rule() -> Iterator[Session]:
    """A write whose unique-name clash, lost to a concurrent request, answers 422 on name."""
    try:
        with _write() as session:
            yield session
    except IntegrityError:
        message = "another rule took this name while this one was saved: choose another name"
        raise RuleInvalid([FieldError("name", message)]) from None


def _json_body(required: bool = True) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and not required and not request.get_data():
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the request body must be a JSON object")
    return data


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(
            400, "bad_parameter", f"{name} must be a whole number from {low} to {high}",
            [FieldError(name, f"got {raw!r}")],
        )  # fmt: skip
    return int(raw)


@api.post("/rules")
@role("editor")
def post_rule() -> tuple[Response, int]:
    """Create a rule."""
    with _write_rule() as session:
        rule = create_rule(session, _json_body(), utcnow())
        return jsonify(rule_to_dict(rule)), 201


@api.get("/rules")
@role("viewer")
def get_rules() -> Response:
    """List rules, optionally by tag, paginated."""
    limit = _int_arg("limit", 100, 1, 1000)
    offset = _int_arg("offset", 0, 0, 10**9)
    with _rt().factory() as session:
        rules, total = list_rules(session, request.args.get("tag"), limit, offset)
        return jsonify(
            rules=[rule_to_dict(r) for r in rules], total=total, limit=limit, offset=offset
        )


@api.get("/rules/<int:rule_id>")
@role("viewer")
def get_one(rule_id: int) -> Response:
    """One rule."""
    with _rt().factory() as session:
        return jsonify(rule_to_dict(get_rule(session, rule_id)))


@api.patch("/rules/<int:rule_id>")
@role("editor")
def patch_rule(rule_id: int) -> Response:
    """Change some fields of a rule; the result is validated as a whole."""
    settings = _rt().settings
    with _write_rule() as session:
        rule = get_rule(session, rule_id)
        ids = change_rule(session, rule, _json_body(), utcnow(), settings.alerts, settings.base_url)
        body = rule_to_dict(rule)
    enqueue_notifications(ids)
    return jsonify(body)


@api.delete("/rules/<int:rule_id>")
@role("editor")
def delete_rule(rule_id: int) -> tuple[str, int]:
    """Delete a rule and its history."""
    settings = _rt().settings
    with _write() as session:
        ids = remove_rule(session, get_rule(session, rule_id), settings.alerts, settings.base_url)
    enqueue_notifications(ids)
    return "", 204


@api.post("/rules/<int:rule_id>/verify")
@role("editor")
def verify_now(rule_id: int) -> tuple[Response, int]:
    """Queue a manual verification on the interactive queue, now or after ``countdown_s``."""
    countdown = _countdown_s(_json_body(required=False))
    with _rt().factory() as session:
        rule = get_rule(session, rule_id)
        timeout = float(rule.target.get("timeout_s", 10))
    task_id = str(uuid.uuid4())
    verify.apply_async(
        args=(rule_id, task_id), task_id=task_id, queue="interactive", countdown=countdown,
        priority=priority(_rt().settings, urgent=True),
        **time_limits(timeout),
    )  # fmt: skip
    return jsonify(task_id=task_id, verification_id=task_id), 202


def _countdown_s(body: dict[str, Any]) -> float:
    countdown = body.get("countdown_s", 0)
    if (
        isinstance(countdown, int | float)
        and not isinstance(countdown, bool)
        and 0 <= countdown <= MAX_COUNTDOWN_S
    ):
        return float(countdown)
    message = (
        f"countdown_s must be a number of seconds from 0 to {MAX_COUNTDOWN_S}: Redis redelivers "
        "a message still waiting after its 3600 s visibility timeout, so it would run twice"
    )
    raise ApiError(400, "bad_parameter", message, [FieldError("countdown_s", f"got {countdown!r}")])


@api.post("/verify-all")
@role("editor")
def verify_all() -> tuple[Response, int]:
    """Verify every enabled rule now."""
    result = verify_all_rules.apply_async(kwargs={"force": True})
    return jsonify(task_id=result.id), 202


@api.get("/tasks/<task_id>")
@role("viewer")
def task_status(task_id: str) -> Response:
    """A task's state (Celery's names) and its result once there is one."""
    result: AsyncResult[Any] = AsyncResult(task_id, app=current_app.extensions["celery"])
    state = result.state
    payload: Any = None
    if state == "SUCCESS":
        payload = result.result
    elif state in ("FAILURE", "RETRY"):
        payload = {"error": repr(result.result)}
    return jsonify(task_id=task_id, state=state, result=payload)


@api.get("/rules/<int:rule_id>/verifications")
@role("viewer")
def verifications(rule_id: int) -> Response:
    """A rule's verifications, newest first."""
    limit = _int_arg("limit", 50, 1, 1000)
    with _rt().factory() as session:
        rule = get_rule(session, rule_id)
        rows = session.scalars(
            select(Verification)
            .where(Verification.rule_id == rule_id)
            .order_by(Verification.started_at.desc())
            .limit(limit)
        )
        return jsonify(verifications=[verification_to_dict(v, rule.name) for v in rows])


@api.get("/stability")
@role("viewer")
def stability() -> Response:
    """Stability rates over a window: overall, and a page of rules (by name or worst first)."""
    window, tag = request.args.get("window", "24h"), request.args.get("tag")
    limit = _int_arg("limit", 100, 1, 10000)
    offset = _int_arg("offset", 0, 0, 10**9)
    order = request.args.get("order", "name")
    if order not in ("name", "worst"):
        raise ApiError(400, "bad_parameter", "order must be name or worst",
                       [FieldError("order", f"got {order!r}")])  # fmt: skip
    rt = _rt()
    try:
        parse_window(window)
    except ValueError as exc:
        raise ApiError(400, "bad_parameter", str(exc), [FieldError("window", str(exc))]) from None

    def compute() -> StabilityReport:
        with rt.factory() as session:
            return stability_report(session, window, utcnow(), tag)

    report = rt.reports.get((window, tag), utcnow(), compute)
    return jsonify(report_to_dict(report, limit, offset, worst_first=order == "worst"))


@api.get("/notifications")
@role("viewer")
def list_notifications() -> Response:
    """Outbox rows, newest first: status (pending, sending, sent, failed, unsent), attempts, why."""
    limit = _int_arg("limit", 50, 1, 1000)
    status = request.args.get("status")
    with _rt().factory() as session:
        rows = recent_notifications(session, limit, status)
        return jsonify(notifications=[notification_to_dict(n) for n in rows])


@api.get("/incidents")
@role("viewer")
def list_incidents() -> Response:
    """Incidents, newest first: ``state=open`` for open ones, ``rule_id`` for one rule."""
    limit = _int_arg("limit", 50, 1, 1000)
    state = request.args.get("state", "all")
    if state not in ("open", "all"):
        raise ApiError(400, "bad_parameter", "state must be open or all",
                       [FieldError("state", f"got {state!r}")])  # fmt: skip
    rule_id = _int_arg("rule_id", 0, 1, 2**31 - 1) if "rule_id" in request.args else None
    with _rt().factory() as session:
        rows = recent_incidents(session, limit, state == "open", rule_id)
        return jsonify(incidents=[incident_to_dict(i) for i in rows])


@api.get("/maintenance")
@role("viewer")
def get_maintenance() -> Response:
    """Maintenance windows, newest first, each with whether it is active and its next run."""
    now = utcnow()
    with _rt().factory() as session:
        return jsonify(maintenance=[window_to_dict(w, now) for w in list_windows(session)])


@api.post("/maintenance")
@role("editor")
def post_maintenance() -> tuple[Response, int]:
    """Plan a maintenance window (one-off, or recurring with ``cron``)."""
    with _write() as session:
        window = create_window(session, _json_body())
        return jsonify(window_to_dict(window, utcnow())), 201


@api.get("/maintenance/<int:window_id>")
@role("viewer")
def get_one_maintenance(window_id: int) -> Response:
    """One maintenance window."""
    with _rt().factory() as session:
        return jsonify(window_to_dict(get_window(session, window_id), utcnow()))


@api.patch("/maintenance/<int:window_id>")
@role("editor")
def patch_maintenance(window_id: int) -> Response:
    """Change some fields of a window (null clears one); the result is validated as a whole."""
    with _write() as session:
        window = update_window(session, get_window(session, window_id), _json_body())
        return jsonify(window_to_dict(window, utcnow()))


@api.delete("/maintenance/<int:window_id>")
@role("editor")
def delete_maintenance(window_id: int) -> tuple[str, int]:
    """End and forget a maintenance window (verifications already marked stay marked)."""
    with _write() as session:
        session.delete(get_window(session, window_id))
    return "", 204
