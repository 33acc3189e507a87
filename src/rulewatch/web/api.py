"""REST API under /api/v1: thin handlers over the services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from rulewatch import dispatch
from rulewatch.domain.stability import WINDOW_SYNTAX, parse_window
from rulewatch.models import utcnow
from rulewatch.schemas import FieldError, InputInvalid, MaintenanceSpec, RuleInvalid, RuleSpec
from rulewatch.services.alerts import incident_to_dict, recent_incidents
from rulewatch.services.dashboard import recent_verifications
from rulewatch.services.gaps import gap_to_dict, rule_gaps
from rulewatch.services.maintenance import (
    MaintenanceNotFound,
    create_window,
    delete_window,
    get_window,
    list_windows,
    update_window,
    window_to_dict,
)
from rulewatch.services.notifications import notification_to_dict, recent_notifications
from rulewatch.services.reports import shared_stability_report
from rulewatch.services.rule_import import import_rules as import_all
from rulewatch.services.rules import (
    RULE_STATUSES,
    RuleNotFound,
    change_rule,
    create_rule,
    get_rule,
    list_rules,
    remove_rule,
    rule_to_dict,
)
from rulewatch.services.stability import report_to_dict
from rulewatch.services.verification import verification_to_dict
from rulewatch.shapes import (
    Gaps,
    ImportOut,
    Incidents,
    MaintenanceList,
    MaintenanceOut,
    Notifications,
    RuleOut,
    RulePage,
    StabilityOut,
    TaskQueued,
    TaskState,
    VerificationQueued,
    Verifications,
    answer,
)
from rulewatch.web.api_models import MAX_COUNTDOWN_S, RulesImport, VerifyNow
from rulewatch.web.api_spec import ChoiceArg, IntArg, TextArg, documented
from rulewatch.web.auth import authorise, role
from rulewatch.web.common import celery_app, json_body, rt, write
from rulewatch.web.errors import ApiError, error_response
from rulewatch.web.text_guard import refuse_nul_characters

api = Blueprint("api", __name__, url_prefix="/api/v1")
api.before_request(authorise)  # every endpoint: signed in, and a role that may (fail closed)
api.before_request(refuse_nul_characters)  # PostgreSQL cannot store it: 400, not 500
API_PATHS = "/api/"
MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns on every database
OFFSET = IntArg("offset", 0, 10**9, "how many to skip", default=0)
TAG = TextArg("tag", "only the rules with this tag")


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


@contextmanager
def _write_rule() -> Iterator[Session]:
    """A write whose unique-name clash, lost to a concurrent request, answers 422 on name."""
    try:
        with write() as session:
            yield session
    except IntegrityError:
        message = "another rule took this name while this one was saved: choose another name"
        raise RuleInvalid([FieldError("name", message)]) from None


def _limit(default: int, high: int) -> IntArg:
    return IntArg("limit", 1, high, "how many at most", default)


RULES_LIMIT = _limit(100, 1000)
RULE_STATUS = ChoiceArg("status", ("all", *RULE_STATUSES), "all",
                        "pass, fail, error: enabled rules whose last run had it; paused: disabled;"
                        " nodata: enabled, never verified")  # fmt: skip
NAME_CONTAINS = TextArg("q", "only the rules whose name contains this, ignoring case")
MAX_NAME_QUERY = 200  # rule names are at most 200 characters


@api.post("/rules")
@role("editor")
@documented(RuleOut, 201, body=RuleSpec, errors=[422])
def post_rule() -> tuple[Response, int]:
    """Create a rule."""
    with _write_rule() as session:
        rule = create_rule(session, json_body(), utcnow())
        return jsonify(rule_to_dict(rule)), 201


@api.post("/rules/import")
@role("editor")
@documented(ImportOut, body=RulesImport, errors=[422])
def import_rules() -> Response:
    """Create or update rules by name; one bad rule stores none, every problem is listed."""
    body = json_body()
    unknown = sorted(set(body) - {"rules"})
    items = body.get("rules")
    if unknown or not isinstance(items, list):
        problems = [FieldError(key, "unknown field: the body is {\"rules\": [...]}")
                    for key in unknown]  # fmt: skip
        if not isinstance(items, list):
            problems.append(FieldError("rules", "give the rules as a list"))
        raise RuleInvalid(problems)
    settings = rt().settings
    with _write_rule() as session:
        counts = import_all(session, items, utcnow(), settings.alerts, settings.base_url)
    return jsonify(answer(ImportOut, created=counts.created, updated=counts.updated,
                          unchanged=counts.unchanged))  # fmt: skip


@api.get("/rules")
@role("viewer")
@documented(RulePage, query=[TAG, RULE_STATUS, NAME_CONTAINS, RULES_LIMIT, OFFSET])
def get_rules() -> Response:
    """List rules, optionally by tag, status and name (``q``), paginated."""
    limit = RULES_LIMIT.read()
    offset = OFFSET.read()
    status, q = _or_none(RULE_STATUS.read()), NAME_CONTAINS.given()
    if q is not None and len(q) > MAX_NAME_QUERY:
        raise ApiError(400, "bad_parameter", f"q is at most {MAX_NAME_QUERY} characters",
                       [FieldError("q", f"got {len(q)} characters")])  # fmt: skip
    with rt().factory() as session:
        rules, total = list_rules(
            session, TAG.given(), limit, offset, status=status, name_contains=q
        )
        page = [rule_to_dict(r) for r in rules]
        return jsonify(answer(RulePage, rules=page, total=total, limit=limit, offset=offset))


def _or_none(status: str) -> str | None:
    return None if status == "all" else status


@api.get("/rules/<int:rule_id>")
@role("viewer")
@documented(RuleOut)
def get_one(rule_id: int) -> Response:
    """One rule."""
    with rt().factory() as session:
        return jsonify(rule_to_dict(get_rule(session, rule_id)))


@api.patch("/rules/<int:rule_id>")
@role("editor")
@documented(RuleOut, body=RuleSpec, partial=True, errors=[422])
def patch_rule(rule_id: int) -> Response:
    """Change some fields of a rule; the result is validated as a whole."""
    settings = rt().settings
    with _write_rule() as session:
        rule = get_rule(session, rule_id)
        change_rule(session, rule, json_body(), utcnow(), settings.alerts, settings.base_url)
        body = rule_to_dict(rule)
    return jsonify(body)


@api.delete("/rules/<int:rule_id>")
@role("editor")
@documented(None, 204)
def delete_rule(rule_id: int) -> tuple[str, int]:
    """Delete a rule and its history."""
    settings = rt().settings
    with write() as session:
        remove_rule(session, get_rule(session, rule_id), settings.alerts, settings.base_url)
    return "", 204


@api.post("/rules/<int:rule_id>/verify")
@role("editor")
@documented(VerificationQueued, 202, body=VerifyNow, body_required=False)
def verify_now(rule_id: int) -> tuple[Response, int]:
    """Queue a manual verification on the interactive queue, now or after ``countdown_s``."""
    task_id = dispatch.verify_now(rt(), rule_id, _countdown_s(json_body(required=False)))
    return jsonify(answer(VerificationQueued, task_id=task_id, verification_id=task_id)), 202


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
@documented(TaskQueued, 202)
def verify_all() -> tuple[Response, int]:
    """Verify every enabled rule now."""
    return jsonify(answer(TaskQueued, task_id=dispatch.verify_every_rule())), 202


@api.get("/tasks/<task_id>")
@role("viewer")
@documented(TaskState)
def task_status(task_id: str) -> Response:
    """A task's state (Celery's names) and its result once there is one."""
    found = dispatch.task_state(celery_app(), task_id)
    payload = found.result if found.error is None else {"error": found.error}
    return jsonify(answer(TaskState, task_id=task_id, state=found.state, result=payload))


VERIFICATIONS_LIMIT = _limit(50, 1000)


@api.get("/rules/<int:rule_id>/verifications")
@role("viewer")
@documented(Verifications, query=[VERIFICATIONS_LIMIT])
def verifications(rule_id: int) -> Response:
    """A rule's verifications, newest first."""
    limit = VERIFICATIONS_LIMIT.read()
    with rt().factory() as session:
        rule = get_rule(session, rule_id)
        rows = recent_verifications(session, rule_id, limit)
        verified = [verification_to_dict(v, rule.name) for v in rows]
        return jsonify(answer(Verifications, verifications=verified))


WINDOW = TextArg("window", "a number and a unit (m, h, d, w), from 1h to 400d", "24h",
                 rf"^\s*{WINDOW_SYNTAX}\s*$")  # fmt: skip
STABILITY_LIMIT = _limit(100, 10000)
ORDER = ChoiceArg("order", ("name", "worst"), "name", "rules by name, or the worst first")


@api.get("/stability")
@role("viewer")
@documented(StabilityOut, query=[WINDOW, TAG, STABILITY_LIMIT, OFFSET, ORDER])
def stability() -> Response:
    """Stability rates over a window: overall, and a page of rules (by name or worst first)."""
    window, tag = WINDOW.read(), TAG.given()
    limit = STABILITY_LIMIT.read()
    offset = OFFSET.read()
    order = ORDER.read()
    _parsed_window(window)
    runtime = rt()
    report = shared_stability_report(runtime.reports, runtime.factory, window, tag, utcnow())
    return jsonify(report_to_dict(report, limit, offset, worst_first=order == "worst"))


GAPS_WINDOW = TextArg("window", "how far back: a number and a unit (m, h, d, w), up to 400d",
                      "7d", rf"^\s*{WINDOW_SYNTAX}\s*$")  # fmt: skip
GAPS_LIMIT = _limit(100, 1000)


@api.get("/rules/<int:rule_id>/gaps")
@role("viewer")
@documented(Gaps, query=[GAPS_WINDOW, GAPS_LIMIT])
def gaps(rule_id: int) -> Response:
    """The times the rule went unverified because the monitor could not run it (database,
    broker or workers down, or overloaded), newest first; they count in no rate."""
    window, limit = GAPS_WINDOW.read(), GAPS_LIMIT.read()
    since = utcnow() - _parsed_window(window)
    with rt().factory() as session:
        get_rule(session, rule_id)
        found = [gap_to_dict(g) for g in rule_gaps(session, rule_id, since, limit)]
    return jsonify(answer(Gaps, gaps=found))


def _parsed_window(window: str) -> timedelta:
    """The span ``window`` names; 400 bad_parameter when it names none."""
    try:
        return parse_window(window)
    except ValueError as exc:
        raise ApiError(400, "bad_parameter", str(exc), [FieldError("window", str(exc))]) from None


NOTIFICATIONS_LIMIT = _limit(50, 1000)
NOTIFICATION_STATUS = TextArg("status", "only this status: pending, sending, sent, failed, unsent")


@api.get("/notifications")
@role("viewer")
@documented(Notifications, query=[NOTIFICATIONS_LIMIT, NOTIFICATION_STATUS])
def list_notifications() -> Response:
    """Outbox rows, newest first: status (pending, sending, sent, failed, unsent), attempts, why."""
    limit = NOTIFICATIONS_LIMIT.read()
    status = NOTIFICATION_STATUS.given()
    with rt().factory() as session:
        rows = recent_notifications(session, limit, status)
        return jsonify(answer(Notifications, notifications=[notification_to_dict(n) for n in rows]))


INCIDENTS_LIMIT = _limit(50, 1000)
INCIDENT_STATE = ChoiceArg("state", ("open", "all"), "all", "open ones only, or all")
INCIDENT_RULE = IntArg("rule_id", 1, MAX_ID, "only this rule's")


@api.get("/incidents")
@role("viewer")
@documented(Incidents, query=[INCIDENTS_LIMIT, INCIDENT_STATE, INCIDENT_RULE])
def list_incidents() -> Response:
    """Incidents, newest first: ``state=open`` for open ones, ``rule_id`` for one rule."""
    limit = INCIDENTS_LIMIT.read()
    state = INCIDENT_STATE.read()
    with rt().factory() as session:
        rows = recent_incidents(session, limit, state == "open", INCIDENT_RULE.given())
        return jsonify(answer(Incidents, incidents=[incident_to_dict(i) for i in rows]))


@api.get("/maintenance")
@role("viewer")
@documented(MaintenanceList)
def get_maintenance() -> Response:
    """Maintenance windows, newest first, each with whether it is active and its next run."""
    now = utcnow()
    with rt().factory() as session:
        windows = [window_to_dict(w, now) for w in list_windows(session)]
        return jsonify(answer(MaintenanceList, maintenance=windows))


@api.post("/maintenance")
@role("editor")
@documented(MaintenanceOut, 201, body=MaintenanceSpec, errors=[422])
def post_maintenance() -> tuple[Response, int]:
    """Plan a maintenance window (one-off, or recurring with ``cron``)."""
    with write() as session:
        window = create_window(session, json_body())
        return jsonify(window_to_dict(window, utcnow())), 201


@api.get("/maintenance/<int:window_id>")
@role("viewer")
@documented(MaintenanceOut)
def get_one_maintenance(window_id: int) -> Response:
    """One maintenance window."""
    with rt().factory() as session:
        return jsonify(window_to_dict(get_window(session, window_id), utcnow()))


@api.patch("/maintenance/<int:window_id>")
@role("editor")
@documented(MaintenanceOut, body=MaintenanceSpec, partial=True, errors=[422])
def patch_maintenance(window_id: int) -> Response:
    """Change some fields of a window (null clears one); the result is validated as a whole."""
    with write() as session:
        window = update_window(session, get_window(session, window_id), json_body())
        return jsonify(window_to_dict(window, utcnow()))


@api.delete("/maintenance/<int:window_id>")
@role("editor")
@documented(None, 204)
def delete_maintenance(window_id: int) -> tuple[str, int]:
    """End and forget a maintenance window (verifications already marked stay marked)."""
    with write() as session:
        delete_window(session, window_id)
    return "", 204
