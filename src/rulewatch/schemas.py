"""The rule schema: one place that validates rules from the API, YAML files and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from rulewatch.domain.conditions import ConditionSyntaxError, parse_condition
from rulewatch.domain.maintenance import MaintenanceError, MaintenanceWindow
from rulewatch.domain.schedule import Schedule, ScheduleError
from rulewatch.probes import KINDS

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


def _known_kind(name: str) -> str:
    """The name of a registered kind, refused like a Literal of the kinds would refuse it."""
    if name not in KINDS:
        *first, last = (repr(known) for known in KINDS)
        expected = f"{', '.join(first)} or {last}" if first else last
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )
    return name


KindName = Annotated[
    str,
    AfterValidator(_known_kind),
    WithJsonSchema({"enum": list(KINDS), "type": "string"}),
]
ConditionText = Annotated[str, StringConstraints(max_length=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _KindTarget:
    """Documents a rule's target as one of the kinds' targets; validation picks it by kind."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        targets = [handler(kind.target.__pydantic_core_schema__) for kind in KINDS.values()]
        names = ", ".join(KINDS)
        return {"anyOf": targets, "description": f"the target of the rule's kind ({names})"}


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


class AlertSpec(_Strict):
    """Who to tell and when: the rule's alert policy (global defaults apply when absent)."""

    emails: Annotated[list[Email], Field(max_length=50)] = Field(default_factory=list)
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 3
    success_threshold: Annotated[int, Field(ge=1, le=1000)] = 2
    send_on_resolved: bool = True
    reminder_interval_s: Annotated[int, Field(ge=0, le=31 * 86400)] = 0

    @field_validator("reminder_interval_s")
    @classmethod
    def _reminders_not_too_often(cls, value: int) -> int:
        if 0 < value < 60:
            raise ValueError("reminder_interval_s must be 0 (no reminders) or at least 60 seconds")
        return value


class RuleSpec(_Strict):
    """A rule as users write it (API JSON or YAML)."""

    name: Name
    kind: KindName
    target: Annotated[dict[str, Any], _KindTarget()]
    conditions: Annotated[list[ConditionText], Field(min_length=1)]
    interval_s: int | None = None
    # the lengths of the columns that store them
    cron: Annotated[str, StringConstraints(max_length=120)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] = "UTC"
    enabled: bool = True
    tags: list[Tag] = Field(default_factory=list)
    stability_target: Annotated[float, Field(gt=0, le=1)] = 0.99
    alert: AlertSpec | None = None

    @property
    def schedule(self) -> Schedule:
        """The rule's schedule as the domain sees it."""
        return Schedule(interval_s=self.interval_s, cron=self.cron, timezone=self.timezone)

    @property
    def timeout_s(self) -> float:
        """How long one check of this rule may take."""
        return float(self.target.get("timeout_s", 10))


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, with the position inside a condition when there is one."""

    field: str
    message: str
    position: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form used by the API and the CLI."""
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.position is not None:
            out["position"] = self.position
        return out


class InputInvalid(ValueError):
    """Input failed validation; ``errors`` lists every problem found, ``what`` names the thing."""

    what = "input"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


class RuleInvalid(InputInvalid):
    """A rule failed validation."""

    what = "rule"


class MaintenanceInvalid(InputInvalid):
    """A maintenance window failed validation."""

    what = "maintenance window"


def validate_rule(data: Mapping[str, Any]) -> RuleSpec:
    """Validate raw rule data; raise RuleInvalid naming every bad field."""
    if not isinstance(data, Mapping):
        raise RuleInvalid([FieldError("(rule)", "a rule must be an object of fields")])
    raw = dict(data)
    try:
        spec = RuleSpec.model_validate(raw)
    except ValidationError as exc:
        base = field_errors(exc)
        raise RuleInvalid(base + _part_errors(raw, {e.field for e in base})) from None
    # the checks of _part_errors, in its order, on sound fields: the target validated once
    try:
        target = KINDS[spec.kind].target.model_validate(spec.target)
    except ValidationError as exc:
        target, errors = None, field_errors(exc, prefix="target")
    else:
        errors = []
    errors += _condition_errors(spec.kind, spec.conditions, set())
    errors += _schedule_errors(spec.interval_s, spec.cron, spec.timezone)
    if errors or target is None:
        raise RuleInvalid(errors)
    spec.target = target.model_dump()
    return spec


def _part_errors(values: dict[str, Any], failed: set[str]) -> list[FieldError]:
    """Check target, conditions and schedule, each where the fields it rests on are sound.

    ``failed`` names the fields the base model already reported, so that a rule with a bad
    name still has its url, conditions and schedule checked, and nothing is reported twice.
    """
    kind = values.get("kind") if "kind" not in failed else None
    errors: list[FieldError] = []
    if kind in KINDS and "target" not in failed and isinstance(values.get("target"), dict):
        errors += _target_errors(kind, values["target"])
    if kind in KINDS and "conditions" not in failed:
        errors += _condition_errors(kind, values.get("conditions"), failed)
    if not failed & {"interval_s", "cron", "timezone"}:
        errors += _schedule_errors(
            values.get("interval_s"), values.get("cron"), values.get("timezone", "UTC")
        )
    return errors


def _target_errors(kind: str, raw: dict[str, Any]) -> list[FieldError]:
    try:
        KINDS[kind].target.model_validate(raw)
    except ValidationError as exc:
        return field_errors(exc, prefix="target")
    return []


def check_conditions(kind: str, conditions: Sequence[str]) -> list[FieldError | None]:
    """Each condition checked as saving a rule of ``kind`` checks it: its error, or None."""
    return [_condition_error(kind, i, text) for i, text in enumerate(conditions)]


def _condition_errors(kind: str, conditions: Any, failed: set[str]) -> list[FieldError]:
    if not isinstance(conditions, list):
        return []
    errors = []
    for i, text in enumerate(conditions):
        if not isinstance(text, str) or f"conditions[{i}]" in failed:
            continue
        error = _condition_error(kind, i, text)
        if error is not None:
            errors.append(error)
    return errors


def _condition_error(kind: str, index: int, text: str) -> FieldError | None:
    problem = _condition_problem(kind, text)
    return None if problem is None else FieldError(f"conditions[{index}]", *problem)


@lru_cache(maxsize=4096)
def _condition_problem(kind: str, text: str) -> tuple[str, int | None] | None:
    """What is wrong with a condition of ``kind`` (message, position), or None: parsing is
    pure, and a file of many rules repeats the same few conditions."""
    try:
        parse_condition(text, KINDS[kind].vocabulary)
    except ConditionSyntaxError as exc:
        return str(exc), exc.position
    return None


def _schedule_errors(interval_s: Any, cron: Any, timezone: Any) -> list[FieldError]:
    # raw values of the right types only: the base model reports the others
    if not (
        isinstance(interval_s, int | None)
        and not isinstance(interval_s, bool)
        and isinstance(cron, str | None)
        and isinstance(timezone, str)
    ):
        return []
    if (interval_s is None) == (cron is None):
        return [FieldError("interval_s", "give exactly one of interval_s or cron")]
    try:
        Schedule(interval_s=interval_s, cron=cron, timezone=timezone).validate()
    except ScheduleError as exc:
        return [FieldError("interval_s" if cron is None else "cron", str(exc))]
    return []


def field_errors(exc: ValidationError, prefix: str = "", empty: str = "(rule)") -> list[FieldError]:
    """Pydantic's errors as FieldErrors named by path (``target.url``, ``conditions[2]``)."""
    out = []
    for err in exc.errors():
        path = prefix
        for part in err["loc"]:
            path = (
                f"{path}[{part}]"
                if isinstance(part, int)
                else f"{path}.{part}"
                if path
                else str(part)
            )
        out.append(FieldError(path or empty, err["msg"]))
    return out


class MaintenanceSpec(_Strict):
    """A maintenance window as users write it (API JSON)."""

    name: Name
    scope: Literal["all", "rule", "tag"] = "all"
    rule_id: Annotated[int, Field(ge=1)] | None = None
    tag: Tag | None = None
    starts_at: AwareDatetime
    duration_s: Annotated[int, Field(ge=60, le=31 * 86400)]
    cron: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] = "UTC"
    ends_at: AwareDatetime | None = None
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


def validate_maintenance(
    data: Mapping[str, Any], rule_exists: Callable[[int], bool]
) -> MaintenanceSpec:
    """Validate a maintenance window; raise MaintenanceInvalid naming every bad field."""
    if not isinstance(data, Mapping):
        raise MaintenanceInvalid([FieldError("(window)", "a window must be an object of fields")])
    try:
        spec = MaintenanceSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise MaintenanceInvalid(field_errors(exc, empty="(window)")) from None
    window = MaintenanceWindow.of(spec)
    try:
        window.validate()
    except MaintenanceError as exc:
        raise MaintenanceInvalid([FieldError(exc.field, str(exc))]) from None
    if spec.rule_id is not None and not rule_exists(spec.rule_id):
        raise MaintenanceInvalid([FieldError("rule_id", f"no rule has id {spec.rule_id}")])
    return spec
