"""Report endpoints on the api blueprint: start the stability report as a task, fetch its HTML."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Response, current_app, jsonify
from pydantic import BaseModel, ConfigDict, Field

from rulewatch import dispatch
from rulewatch.domain.stability import WINDOW_SYNTAX, parse_window
from rulewatch.models import utcnow
from rulewatch.schemas import FieldError, Tag
from rulewatch.services.report_tasks import ReportTaskIds
from rulewatch.shapes import ReportState, answer
from rulewatch.web.api import api
from rulewatch.web.api_spec import documented
from rulewatch.web.auth import role
from rulewatch.web.common import celery_app, json_body
from rulewatch.web.errors import ApiError

DEFAULT_WINDOW = "7d"
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # the tag pattern of rules


class ReportRequest(BaseModel):
    """Which stability report to compute."""

    model_config = ConfigDict(extra="forbid")
    window: str = Field(
        DEFAULT_WINDOW,
        pattern=rf"^\s*{WINDOW_SYNTAX}\s*$",
        description="a number and a unit (m, h, d, w), from 1h to 400d",
    )
    tag: Tag | None = Field(None, description="only the rules with this tag")


def _task_ids() -> ReportTaskIds:
    fallbacks = current_app.config.get("SECRET_KEY_FALLBACKS") or []
    return ReportTaskIds.from_secret_keys(current_app.config["SECRET_KEY"], fallbacks)


def _bad(field: str, message: str, got: Any) -> ApiError:
    return ApiError(400, "bad_parameter", message, [FieldError(field, f"got {got!r}")])


@api.post("/reports")
@role("viewer")
@documented(ReportState, 202, body=ReportRequest, body_required=False)
def post_report() -> tuple[Response, int]:
    """Start the stability report (``window``, default 7d; ``tag``) on the reports queue."""
    body = json_body(required=False)
    extra = sorted(set(body) - {"window", "tag"})
    if extra:
        raise ApiError(400, "bad_parameter", "a report takes window and tag only",
                       [FieldError(f, "not a report parameter") for f in extra])  # fmt: skip
    window, tag = body.get("window", DEFAULT_WINDOW), body.get("tag")
    if not isinstance(window, str):
        raise _bad("window", "window must be text, like 24h or 7d", window)
    try:
        parse_window(window)
    except ValueError as exc:
        raise _bad("window", str(exc), window) from None
    if tag is not None and not (isinstance(tag, str) and _TAG.fullmatch(tag)):
        raise _bad("tag", "tag must be a rule tag: 1 to 64 of A-Z a-z 0-9 _ . : -", tag)
    task_id = _task_ids().new(utcnow())
    dispatch.stability_report(task_id, window, tag)
    response = jsonify(answer(ReportState, task_id=task_id, state="PENDING"))
    response.headers["Location"] = f"{api.url_prefix}/reports/{task_id}"
    return response, 202


@api.get("/reports/<task_id>")
@role("viewer")
@documented(ReportState, 202, answers={200: "text/html"})
def get_report(task_id: str) -> Response | tuple[Response, int]:
    """The report's HTML once done (200 text/html); its state while not (202); 404 if unknown."""
    issued = _task_ids().issued_at(task_id)
    if issued is None or utcnow() - issued > _result_lifetime(celery_app().conf.result_expires):
        raise ApiError(
            404, "not_found",
            "no report task has this id, or its result has expired:"
            " start one with POST /api/v1/reports",
        )  # fmt: skip
    found = dispatch.task_state(celery_app(), task_id)
    if found.state == "SUCCESS":
        return Response(str(found.result), mimetype="text/html")
    if found.state == "FAILURE":
        problem = found.problem
        raise ApiError(500, "report_failed",
                       f"the report failed: {type(problem).__name__}: {problem}")  # fmt: skip
    return jsonify(answer(ReportState, task_id=task_id, state=found.state)), 202


def _result_lifetime(expires: Any) -> timedelta:
    if isinstance(expires, timedelta):
        return expires
    return timedelta(seconds=float(expires)) if expires else timedelta.max
