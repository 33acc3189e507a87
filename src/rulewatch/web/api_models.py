"""The API's request bodies that schemas.py does not hold, and the OpenAPI document's own model.

Answers are in ``rulewatch.shapes``. The access requests are read by hand (their error
messages come from ``domain.access``), from the fields and limits declared here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from rulewatch.domain.access import MAX_PASSWORD, MIN_PASSWORD, NAME_PATTERN
from rulewatch.schemas import ConditionText, KindName
from rulewatch.services.tokens import MAX_LABEL
from rulewatch.shapes import Role

MAX_CHECKED_CONDITIONS = 100  # a rule editor holds a few; more is not someone typing
# Redis redelivers a message unacknowledged for its visibility timeout (3600 s), and a
# delayed message counts as unacknowledged from the start: longer waits would run twice.
MAX_COUNTDOWN_S = 3300


class VerifyNow(BaseModel):
    """When to verify: now, or after ``countdown_s`` seconds."""

    model_config = ConfigDict(extra="allow")

    countdown_s: Annotated[float, Field(ge=0, le=MAX_COUNTDOWN_S)] = 0


class RulesImport(BaseModel):
    """Rules to create or update by name, as ``rulewatch rules import`` takes them: each item
    a rule (fields it leaves out keep the stored rule's values), all validated before any is
    stored."""

    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]]


class ConditionsCheck(BaseModel):
    """Condition texts to check as the conditions of a rule of ``kind``."""

    model_config = ConfigDict(extra="forbid")

    kind: KindName
    conditions: Annotated[list[ConditionText], Field(max_length=MAX_CHECKED_CONDITIONS)]


UserName = Annotated[str, StringConstraints(pattern=f"^{NAME_PATTERN}$")]
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]


class SignIn(BaseModel):
    """A username and password."""

    username: str
    password: str


class NewUser(BaseModel):
    """A user to create; without a password, one is generated and answered this once."""

    model_config = ConfigDict(extra="forbid")

    name: UserName
    role: Role
    password: Password | SkipJsonSchema[None] = None


class UserChange(BaseModel):
    """A new role, a new password (which ends the user's sessions), or both."""

    model_config = ConfigDict(extra="forbid")

    role: Role | SkipJsonSchema[None] = None
    password: Password | SkipJsonSchema[None] = None


class NewToken(BaseModel):
    """A token for a user (by name or id; the caller by default), with an optional label."""

    model_config = ConfigDict(extra="forbid")

    user: str | Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = None
    label: Annotated[str, StringConstraints(max_length=MAX_LABEL)] | None = None


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
