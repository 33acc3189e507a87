"""The API's JSON shapes that schemas.py does not hold: answers, errors, access requests.

The OpenAPI document is generated from these and from schemas.py. Answers mirror the
services' ``*_to_dict`` functions; the schemathesis test in tests/api checks every answer
against them, so a field added to one and not the other fails there. The access requests
are read by hand (their error messages come from ``domain.access``), from the fields and
limits declared here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from rulewatch.domain.access import MAX_PASSWORD, MIN_PASSWORD, NAME_PATTERN, ROLES
from rulewatch.schemas import ConditionText, Kind, MaintenanceSpec, RuleSpec
from rulewatch.services.tokens import MAX_LABEL

MAX_CHECKED_CONDITIONS = 100  # a rule editor holds a few; more is not someone typing
# Redis redelivers a message unacknowledged for its visibility timeout (3600 s), and a
# delayed message counts as unacknowledged from the start: longer waits would run twice.
MAX_COUNTDOWN_S = 3300

Role = Annotated[str, Field(json_schema_extra={"enum": list(ROLES)})]
Status = Literal["pass", "fail", "error"]


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
    last_verified_at: datetime | None
    next_due_at: datetime
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class RulePage(_Answer):
    """A page of rules ordered by name."""

    rules: list[RuleOut]
    total: int
    limit: int
    offset: int


class VerificationOut(_Answer):
    """One verification of a rule: the outcome, each condition and what was measured."""

    id: str
    rule_id: int
    rule_name: str | None
    status: Status
    trigger: Literal["schedule", "manual"]
    scheduled_for: datetime | None
    started_at: datetime
    duration_ms: float
    conditions: list[dict[str, Any]]
    measured: dict[str, Any]
    error: str | None
    in_maintenance: bool


class Verifications(_Answer):
    """A rule's verifications, newest first."""

    verifications: list[VerificationOut]


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


class StabilityOut(_Answer):
    """Stability rates over a window: overall and a page of rules."""

    window: str
    start: datetime
    end: datetime
    tag: str | None
    overall: OverallRate
    total: int
    limit: int | None
    offset: int
    rules: list[RuleRate]


class VerifyNow(BaseModel):
    """When to verify: now, or after ``countdown_s`` seconds."""

    model_config = ConfigDict(extra="allow")

    countdown_s: Annotated[float, Field(ge=0, le=MAX_COUNTDOWN_S)] = 0


class VerificationQueued(_Answer):
    """The task that runs the verification; it records the verification under the same id."""

    task_id: str
    verification_id: str


class TaskQueued(_Answer):
    """The task queued; follow it at /api/v1/tasks/{task_id}."""

    task_id: str


class TaskState(_Answer):
    """A task's state (Celery's names) and its result once there is one."""

    task_id: str
    state: str = Field(examples=["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY"])
    result: Any = Field(description="the task's result on SUCCESS, {error} on FAILURE or RETRY")


# the rule editor: conditions checked as typed, a draft tried


class ConditionsCheck(BaseModel):
    """Condition texts to check as the conditions of a rule of ``kind``."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    conditions: Annotated[list[ConditionText], Field(max_length=MAX_CHECKED_CONDITIONS)]


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
    started_at: datetime
    duration_ms: float
    conditions: list[dict[str, Any]]
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
    created_at: datetime
    sent_at: datetime | None


class Notifications(_Answer):
    """Outbox rows, newest first."""

    notifications: list[NotificationOut]


class IncidentOut(_Answer):
    """A period in which a rule failed enough to alert."""

    id: int
    rule_id: int | None
    rule_name: str
    state: Literal["open", "resolved"]
    opened_at: datetime
    resolved_at: datetime | None
    resolve_reason: str | None


class Incidents(_Answer):
    """Incidents, newest first."""

    incidents: list[IncidentOut]


class NextRun(_Answer):
    """An occurrence of a maintenance window."""

    starts_at: datetime
    ends_at: datetime


class MaintenanceOut(MaintenanceSpec):
    """A maintenance window: its definition, whether it is active, its current or next run."""

    id: int
    created_at: datetime
    active: bool
    next: NextRun | None

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class MaintenanceList(_Answer):
    """Maintenance windows, newest first."""

    maintenance: list[MaintenanceOut]


# access

UserName = Annotated[str, StringConstraints(pattern=f"^{NAME_PATTERN}$")]
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]


class SignIn(BaseModel):
    """A username and password."""

    username: str
    password: str


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
    created_at: datetime
    last_login_at: datetime | None


class Users(_Answer):
    """Every user, by name."""

    users: list[UserOut]


class NewUser(BaseModel):
    """A user to create; without a password, one is generated and answered this once."""

    model_config = ConfigDict(extra="forbid")

    name: UserName
    role: Role
    password: Password | SkipJsonSchema[None] = None


class CreatedUser(UserOut):
    """The user created, with the generated password when none was given."""

    password: str | SkipJsonSchema[None] = Field(default=None, description="when generated")

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


class UserChange(BaseModel):
    """A new role, a new password (which ends the user's sessions), or both."""

    model_config = ConfigDict(extra="forbid")

    role: Role | SkipJsonSchema[None] = None
    password: Password | SkipJsonSchema[None] = None


class TokenOut(_Answer):
    """A token as listed: its first characters, never its text."""

    id: int
    user: str
    user_id: int
    label: str | None
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class Tokens(_Answer):
    """Tokens, newest first, revoked ones included."""

    tokens: list[TokenOut]


class NewToken(BaseModel):
    """A token for a user (by name or id; the caller by default), with an optional label."""

    model_config = ConfigDict(extra="forbid")

    user: str | Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = None
    label: Annotated[str, StringConstraints(max_length=MAX_LABEL)] | None = None


class CreatedToken(TokenOut):
    """The token created, with its text: shown in this answer only."""

    token: str


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
