"""The JSON shapes the API answers: one pydantic model each, for the answer and its document.

Services build their answers through these models (``answer``), and web/openapi.py
generates the OpenAPI document from the same models, so a field cannot be answered without
being documented. Every field of an answer is always present (``null`` when empty) unless
its model says it may be left out. tests/api/test_shapes.py walks every documented endpoint
with real rows and checks each answer against the document.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import SchemaSerializer, core_schema

from rulewatch.domain.access import ROLES
from rulewatch.schemas import MaintenanceSpec, RuleSpec


def _iso(value: datetime | str) -> str:
    """Answers have always shown times as isoformat() ("+00:00", not pydantic's "Z"); a time
    already shown (a nested answer serialised before) is kept, so answers nest."""
    return value if isinstance(value, str) else value.isoformat()


Time = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Role = Annotated[str, Field(json_schema_extra={"enum": list(ROLES)})]
Status = Literal["pass", "fail", "error"]


def answer(model: type[BaseModel], /, **values: Any) -> dict[str, Any]:
    """The JSON-ready answer of ``model`` from ``values`` named as in the answer (nested
    answers as dicts, raw or already answered): exactly the model's fields, serialised as the
    model says. Fields without a value are left out (those the model lets be absent).

    The values are our own rows, so they are not validated: a row stored under older rules
    must still be shown, and validating a page of rows would cost more than it finds.
    """
    out: dict[str, Any] = _serializer(model).to_python(values)
    return out


@functools.cache
def _serializer(model: type[BaseModel]) -> SchemaSerializer:
    """The model's own serializer, taking dicts: a model instance costs ~10 µs to build
    (model_construct runs in Python), a dict costs nothing, and answers come by the thousand.
    """
    return SchemaSerializer(_dict_shaped(model.__pydantic_core_schema__))


def _dict_shaped(schema: Any) -> Any:
    """``schema`` with each model (and nested model) read as a typed dict of its fields,
    keyed by their JSON names so that an answer already made reads as its own values."""
    if isinstance(schema, list):
        return [_dict_shaped(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "model":
        inner = _dict_shaped(schema["schema"])
        return {**inner, "ref": schema["ref"]} if "ref" in schema else inner
    if schema.get("type") == "model-fields":
        fields = {
            field.get("serialization_alias") or name: core_schema.typed_dict_field(
                _dict_shaped(field["schema"]),
                serialization_exclude=field.get("serialization_exclude"),
            )
            for name, field in schema["fields"].items()
        }
        return core_schema.typed_dict_schema(fields)
    return {key: _dict_shaped(value) for key, value in schema.items()}


class _Answer(BaseModel):
    """An answer: every field is always present, and no other field is."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


# errors


class FieldProblem(_Answer):
    """One problem with one field; ``position`` counts characters into a condition."""

    field: str = Field(examples=["conditions[1]"])
    message: str
    position: int | SkipJsonSchema[None] = Field(
        default=None, description="where in a condition, counted in characters from 0"
    )

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


class ErrorDetail(_Answer):
    """What went wrong, for programs (``code``) and for people (``message``, ``errors``)."""

    code: str = Field(examples=["invalid_rule", "not_found", "unauthenticated"])
    message: str
    errors: list[FieldProblem] = Field(default_factory=list, description="absent when empty")
    required_role: Role | SkipJsonSchema[None] = Field(default=None, description="on 403")
    role: Role | SkipJsonSchema[None] = Field(default=None, description="on 403: the caller's")

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


class ErrorBody(_Answer):
    """Every error answer of the API."""

    error: ErrorDetail


# rules and what they record


class RuleOut(RuleSpec):
    """A rule: its definition as written, its id, and its scheduling state."""

    id: int
    last_status: Status | None
    last_verified_at: Time | None
    next_due_at: Time
    created_at: Time
    updated_at: Time

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class RulePage(_Answer):
    """A page of rules ordered by name."""

    rules: list[RuleOut]
    total: int
    limit: int
    offset: int


class ConditionOutcome(_Answer):
    """One condition of a verification, with the values it was evaluated with."""

    condition: str = Field(examples=["[STATUS] == 200"])
    resolved: str = Field(examples=["[STATUS] (500) == 200"])
    ok: bool
    reason: str | SkipJsonSchema[None] = Field(
        default=None, description="why it could not be evaluated; absent when it could"
    )

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


class VerificationOut(_Answer):
    """One verification of a rule: the outcome, each condition and what was measured."""

    id: str
    rule_id: int
    rule_name: str | None
    status: Status
    trigger: Literal["schedule", "manual"]
    scheduled_for: Time | None
    started_at: Time
    duration_ms: float
    conditions: list[ConditionOutcome]
    measured: dict[str, Any] = Field(description="what the probe measured; depends on the kind")
    error: str | None
    in_maintenance: bool


class Verifications(_Answer):
    """A rule's verifications, newest first."""

    verifications: list[VerificationOut]


class GapOut(_Answer):
    """A time the rule went unverified because the monitor could not run it; never counted
    in its rate."""

    started_at: Time = Field(description="the due time that was not verified on time")
    ended_at: Time = Field(description="when its run started")
    seconds: float
    reason: str


class Gaps(_Answer):
    """A rule's monitor gaps, newest first."""

    gaps: list[GapOut]


class Counts(_Answer):
    """Verifications by outcome; those in maintenance count in no rate."""

    passed: int = Field(alias="pass")
    failed: int = Field(alias="fail")
    errors: int = Field(alias="error")
    maintenance: int


class OverallRate(Counts):
    """Every rule of the report together."""

    rate: float | None = Field(description="pass / (pass + fail); null with no data")
    rules: int
    rules_with_data: int
    rules_meeting_target: int


class RuleRate(Counts):
    """One rule's stability over the window."""

    rule_id: int
    name: str
    rate: float | None
    target: float
    meets_target: bool | None
    error_budget_left: float | None
    unmonitored_s: float = Field(
        description="seconds of the window the rule went unverified because the monitor"
        " could not run it (see /rules/{id}/gaps); no verification is counted for them"
    )


class StabilityOut(_Answer):
    """Stability rates over a window: overall and a page of rules."""

    window: str
    start: Time
    end: Time
    tag: str | None
    overall: OverallRate
    total: int
    limit: int | None
    offset: int
    rules: list[RuleRate]


class VerificationQueued(_Answer):
    """The task that runs the verification; it records the verification under the same id."""

    task_id: str
    verification_id: str


class ImportOut(_Answer):
    """What an import did: rules created, changed, and already as given (not written)."""

    created: int
    updated: int
    unchanged: int


class TaskQueued(_Answer):
    """The task queued; follow it at /api/v1/tasks/{task_id}."""

    task_id: str


class TaskState(_Answer):
    """A task's state (Celery's names) and its result once there is one."""

    task_id: str
    state: str = Field(examples=["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY"])
    result: Any = Field(description="the task's result on SUCCESS, {error} on FAILURE or RETRY")


class ReportState(_Answer):
    """A report task not done yet (GET answers its HTML, as text/html, once it is)."""

    task_id: str = Field(description="fetch the report at /api/v1/reports/{task_id}")
    state: str = Field(examples=["PENDING", "STARTED", "RETRY"])


# the rule editor: conditions checked as typed, a draft tried


class ConditionChecked(_Answer):
    """One condition: whether saving a rule would accept it, and if not why and where."""

    condition: str
    ok: bool
    error: str | None = Field(description="what is wrong and what to write instead")
    position: int | None = Field(description="where, counted in characters from 0")


class ConditionsChecked(_Answer):
    """Each condition sent, in the order sent; ``valid`` when saving would accept them all."""

    valid: bool
    conditions: list[ConditionChecked]


class DraftVerification(_Answer):
    """A draft rule's test run (the result of its task): a verification, recorded nowhere."""

    status: Status
    started_at: Time
    duration_ms: float
    conditions: list[ConditionOutcome]
    measured: dict[str, Any]
    error: str | None


# alerts and maintenance


class NotificationOut(_Answer):
    """An outbox row (the email's bodies left out)."""

    id: int
    rule_id: int | None
    kind: str = Field(examples=["firing", "resolved", "reminder", "digest"])
    recipients: list[str]
    subject: str
    status: str = Field(examples=["pending", "sending", "sent", "failed", "unsent"])
    attempts: int
    last_error: str | None
    group_key: str | None
    created_at: Time
    sent_at: Time | None


class Notifications(_Answer):
    """Outbox rows, newest first."""

    notifications: list[NotificationOut]


class IncidentOut(_Answer):
    """A period in which a rule failed enough to alert."""

    id: int
    rule_id: int | None
    rule_name: str
    state: Literal["open", "resolved"]
    opened_at: Time
    resolved_at: Time | None
    resolve_reason: str | None


class Incidents(_Answer):
    """Incidents, newest first."""

    incidents: list[IncidentOut]


class NextRun(_Answer):
    """An occurrence of a maintenance window."""

    starts_at: Time
    ends_at: Time


class MaintenanceOut(MaintenanceSpec):
    """A maintenance window: its definition, whether it is active, its current or next run."""

    starts_at: Time
    ends_at: Time | None = None
    id: int
    created_at: Time
    active: bool
    next: NextRun | None

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class MaintenanceList(_Answer):
    """Maintenance windows, newest first."""

    maintenance: list[MaintenanceOut]


# data sources


class DataSourceOut(_Answer):
    """A data source: where its database is and whether rules can use it; never its DSN."""

    name: str
    origin: Literal["stored", "settings"] = Field(
        description="stored through the API or CLI, or defined in RULEWATCH_DATASOURCES"
    )
    dialect: str | None = Field(examples=["postgresql", "mysql", "mariadb", "sqlite"])
    driver: str | None = Field(examples=["psycopg", "pymysql", "pysqlite"])
    host: str | None
    port: int | None
    database: str | None
    created_at: Time | None
    usable: bool
    problem: str | None = Field(description="why rules cannot use it, when they cannot")


class StoredDataSource(DataSourceOut):
    """The data source as stored, and whether this request created it."""

    created: bool


class DataSources(_Answer):
    """Every data source rules can name, by name."""

    datasources: list[DataSourceOut]


class DataSourceCheck(_Answer):
    """How connecting and running SELECT 1 went (``error`` scrubbed of the DSN)."""

    name: str
    ok: bool
    error: str | None
    response_time_ms: float | None


# access


class Me(_Answer):
    """The caller: who, their role, and how they signed in."""

    id: int
    name: str
    role: Role
    via: Literal["session", "token"]
    token_id: int | None


class UserOut(_Answer):
    """A user (never a password hash)."""

    id: int
    name: str
    role: Role
    created_at: Time
    last_login_at: Time | None


class Users(_Answer):
    """Every user, by name."""

    users: list[UserOut]


class CreatedUser(UserOut):
    """The user created, with the generated password when none was given."""

    password: str | SkipJsonSchema[None] = Field(default=None, description="when generated")

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


class TokenOut(_Answer):
    """A token as listed: its first characters, never its text."""

    id: int
    user: str
    user_id: int
    label: str | None
    prefix: str
    created_at: Time
    last_used_at: Time | None
    revoked_at: Time | None


class Tokens(_Answer):
    """Tokens, newest first, revoked ones included."""

    tokens: list[TokenOut]


class CreatedToken(TokenOut):
    """The token created, with its text: shown in this answer only."""

    token: str
