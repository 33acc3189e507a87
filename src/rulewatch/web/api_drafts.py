"""Rule editor endpoints on the api blueprint: check conditions as typed, try a draft rule."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from pydantic import ValidationError

from rulewatch import dispatch
from rulewatch.schemas import (
    FieldError,
    InputInvalid,
    RuleSpec,
    check_conditions,
    field_errors,
    validate_rule,
)
from rulewatch.shapes import ConditionsChecked, TaskQueued, answer
from rulewatch.web.api import api
from rulewatch.web.api_models import ConditionsCheck
from rulewatch.web.api_spec import documented
from rulewatch.web.auth import role
from rulewatch.web.common import json_body, rt


class ConditionsCheckInvalid(InputInvalid):
    """A conditions check whose body is not a kind and a list of condition texts."""

    what = "conditions check"


@api.post("/conditions/check")
@role("editor")
@documented(ConditionsChecked, body=ConditionsCheck, errors=[422])
def post_conditions_check() -> Response:
    """Check conditions as saving a rule of ``kind`` would: each one's error and position."""
    try:
        asked = ConditionsCheck.model_validate(json_body())
    except ValidationError as exc:
        raise ConditionsCheckInvalid(field_errors(exc, empty="(check)")) from None
    errors = check_conditions(asked.kind, asked.conditions)
    checked = [_checked(text, error) for text, error in zip(asked.conditions, errors, strict=True)]
    valid = all(error is None for error in errors)
    return jsonify(answer(ConditionsChecked, valid=valid, conditions=checked))


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
    draft = validate_rule(json_body())
    return jsonify(answer(TaskQueued, task_id=dispatch.try_draft(rt().settings, draft))), 202
