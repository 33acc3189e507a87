"""The pages' forms (Flask-WTF: each carries a CSRF token and validates on submit)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in stubs 3.2
from wtforms.validators import InputRequired, Length

from rulewatch.domain.access import MAX_PASSWORD, ROLES
from rulewatch.schemas import FieldError


class LoginForm(FlaskForm):
    """The login form: a username and a password."""

    username = StringField("Username", [InputRequired(), Length(max=64)])
    password = PasswordField("Password", [InputRequired(), Length(max=1024)])


# admin pages

MAINTENANCE_SCOPES = [SelectChoice("all", "every rule"), SelectChoice("rule", "one rule"),
                      SelectChoice("tag", "rules with a tag")]  # fmt: skip
DURATION_RULE = "a duration is a whole number of minutes from 1 to 44640 (31 days)"


class MaintenanceForm(FlaskForm):
    """A maintenance window: what it covers, when it opens, how long it lasts and why.

    Validation is the API's (``validate_maintenance``): the form turns its fields into the
    JSON a window is written in, and puts each error the spec reports next to its field.
    """

    name = StringField("Name", [Length(max=200)])
    scope = SelectField("Covers", choices=MAINTENANCE_SCOPES, default="all")
    rule_id = StringField("Rule (its name or id)", [Length(max=200)])
    tag = StringField("Tag", [Length(max=64)])
    starts_at = StringField("Starts at", render_kw={"type": "datetime-local"})
    duration_min = StringField("Duration (minutes)", default="60")
    cron = StringField("Repeat on a cron schedule (empty: once)", [Length(max=120)])
    timezone = StringField("Time zone", [Length(max=64)], default="UTC")
    ends_at = StringField("Repeat until", render_kw={"type": "datetime-local"})
    comment = TextAreaField("Reason", [Length(max=2000)], render_kw={"rows": 2})

    def to_spec(self) -> dict[str, Any]:
        """The window these fields describe, as the API's JSON (not yet validated)."""
        zone = _zone_or_utc(self.timezone.data)
        scope = self.scope.data or "all"
        spec: dict[str, Any] = {
            "name": (self.name.data or "").strip(),
            "scope": scope,
            "starts_at": _local_time(self.starts_at.data, zone),
            "duration_s": _minutes_as_seconds(self.duration_min.data),
            "timezone": (self.timezone.data or "").strip() or "UTC",
            "comment": (self.comment.data or "").strip() or None,
        }
        if scope == "rule":
            spec["rule_id"] = _whole_number(self.rule_id.data)
        if scope == "tag":
            spec["tag"] = (self.tag.data or "").strip()
        cron = (self.cron.data or "").strip()
        if cron:
            spec["cron"] = cron
            spec["ends_at"] = _local_time(self.ends_at.data, zone)
        return {key: value for key, value in spec.items() if value is not None}

    def show_errors(self, errors: Iterable[FieldError]) -> None:
        """Put each spec error on the field it belongs to; the rest on the form."""
        for error in errors:
            name = error.field.split(".")[0]
            if name == "duration_s":  # the form asks for minutes: say what it takes in minutes
                show_errors(self, [FieldError("duration_min", DURATION_RULE)])
            else:
                show_errors(self, [FieldError(name, error.message)])


def _zone_or_utc(name: str | None) -> ZoneInfo:
    """The zone the form's times are read in; UTC when unknown (the spec names that fault)."""
    try:
        return ZoneInfo((name or "").strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local_time(text: str | None, zone: ZoneInfo) -> str | None:
    """A datetime-local value read in ``zone``, as ISO 8601; other text goes on to be refused."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).isoformat()


def _whole_number(text: str | None) -> int | str | None:
    text = (text or "").strip()
    if not text:
        return None
    return int(text) if text.isascii() and text.isdecimal() and len(text) < 12 else text


def _minutes_as_seconds(text: str | None) -> int | str | None:
    minutes = _whole_number(text)
    return minutes * 60 if isinstance(minutes, int) else minutes


class DataSourceForm(FlaskForm):
    """A data source to store, or whose DSN to replace; the DSN is never shown back."""

    name = StringField("Name", [InputRequired(), Length(max=64)])
    dsn = PasswordField("DSN", [InputRequired(), Length(max=2000)])


class NewUserForm(FlaskForm):
    """A user to create; without a password one is generated and shown once."""

    name = StringField("Name", [InputRequired(), Length(max=64)])
    role = SelectField("Role", choices=[SelectChoice(r) for r in ROLES], default="viewer")
    password = PasswordField("Password (empty: generate one)", [Length(max=MAX_PASSWORD)])


class RoleForm(FlaskForm):
    """A user's new role."""

    role = SelectField("Role", choices=[SelectChoice(r) for r in ROLES])


class NewTokenForm(FlaskForm):
    """A bearer token to create for a user, with a label saying what it is for."""

    user = SelectField("User", choices=[], validate_choice=False)
    label = StringField("Label", [Length(max=100)])


def show_errors(form: FlaskForm, errors: Iterable[FieldError]) -> None:
    """Put each service error on the form field of the same name; the rest on the form."""
    for error in errors:
        field = form._fields.get(error.field) if error.field != "csrf_token" else None
        if field is None:
            form.form_errors.append(f"{error.field}: {error.message}")
        else:
            field.errors = [*field.errors, error.message]
