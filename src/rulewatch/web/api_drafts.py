"""Rule editor endpoints on the api blueprint: check conditions as typed, try a draft rule."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify
from pydantic import ValidationError

from rulewatch.celery_app import priority
from rulewatch.schemas import (
    FieldError,
    InputInvalid,
    RuleSpec,
    check_conditions,
    field_errors,
    validate_rule,
)
from rulewatch.shapes import ConditionsChecked, TaskQueued
from rulewatch.tasks import time_limits, try_rule
from rulewatch.web.api import _json_body, _rt, api
from rulewatch.web.api_models import ConditionsCheck
from rulewatch.web.api_spec import documented
from rulewatch.web.auth import role


class ConditionsCheckInvalid(InputInvalid):
    """A conditions check whose body is not a kind and a list of condition texts."""

    what = "conditions check"


@api.post("/conditions/check")
@role("editor")
@documented(ConditionsChecked, body=ConditionsCheck, errors=[422])
def post_conditions_check() -> Response:
    """Check conditions as saving a rule of ``kind`` would: each one's error and position."""
    try:
        asked = ConditionsCheck.model_validate(_json_body())
    except ValidationError as exc:
        raise ConditionsCheckInvalid(field_errors(exc, empty="(check)")) from None
    errors = check_conditions(asked.kind, asked.conditions)
    checked = [_checked(text, error) for text, error in zip(asked.conditions, errors, strict=True)]
    return jsonify(valid=all(error is None for error in errors), conditions=checked)


def _checked(text: str, error: FieldError | None) -> dict[str, Any]:
    if error is None:
        return {"condition": text, "ok": True, "error": None, "position": None}
    return {"condition": text, "ok": False, "error": error.message, "position": error.position}


@api.post("/rules/try")
@role("editor")
@documented(TaskQueued, 202, body=RuleSpec, errors=[422])
def try_draft() -> tuple[Response, int]:
    """Verify a draft rule once on the interactive queue, recording nothing.

    The body is a rule as POST /api/v1/rules takes it; its name may be an existing rule's (a
    draft of an edit). The task's result, at /api/v1/tasks/{task_id}, is a verification
    without ids: status, started_at, duration_ms, conditions, measured, error.
    """
    return jsonify(task_id=queue_try_rule(_json_body())), 202


def queue_try_rule(data: Mapping[str, Any]) -> str:
    """Validate a draft rule (RuleInvalid if it is not one) and queue its test run; the task id."""
    draft = validate_rule(data)
    task_id = str(uuid.uuid4())
    try_rule.apply_async(
        args=(draft.model_dump(mode="json"),), task_id=task_id, queue="interactive",
        priority=priority(_rt().settings, urgent=True), **time_limits(draft.timeout_s),
    )  # fmt: skip
    return task_id
