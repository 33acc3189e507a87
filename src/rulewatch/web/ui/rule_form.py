"""The rule editor's form: kind-specific fields in, a rule spec out, spec errors back in.

Validation is the API's (``validate_rule``): the form only turns fields into the JSON a
rule is written in, and puts each error the spec reports next to the field it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in stubs 3.2
from wtforms.validators import Length

from rulewatch.schemas import FieldError

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
KINDS = [SelectChoice("http", "HTTP endpoint"), SelectChoice("sql", "SQL query"),
         SelectChoice("tcp", "TCP port")]  # fmt: skip
# spec field (before any "[i]" or ".x") -> form field
_TARGET_FIELDS = {
    "url": "url", "method": "method", "headers": "headers", "body": "body",
    "follow_redirects": "follow_redirects", "verify_tls": "verify_tls",
    "datasource": "datasource", "query": "query", "host": "host", "port": "port",
    "timeout_s": "timeout_s",
}  # fmt: skip
_ALERT_FIELDS = {
    "emails": "alert_emails", "failure_threshold": "failure_threshold",
    "success_threshold": "success_threshold", "send_on_resolved": "send_on_resolved",
    "reminder_interval_s": "reminder_interval_s",
}  # fmt: skip
_INDEX = re.compile(r"\[(\d+)\]")


class RuleForm(FlaskForm):
    """Every field a rule has; only the chosen kind's target fields are used."""

    name = StringField("Name", [Length(max=200)])
    kind = SelectField("Kind", choices=KINDS, default="http")
    url = StringField("URL")
    method = SelectField("Method", choices=[SelectChoice(m) for m in METHODS], default="GET")
    headers = TextAreaField("Request headers", render_kw={"rows": 2})
    body = TextAreaField("Request body", render_kw={"rows": 2})
    follow_redirects = BooleanField("Follow redirects", default=True)
    verify_tls = BooleanField("Verify TLS certificates", default=True)
    datasource = StringField("Data source")
    query = TextAreaField("Query (read-only)", render_kw={"rows": 4})
    host = StringField("Host")
    port = StringField("Port")
    timeout_s = StringField("Timeout (seconds)")
    conditions = TextAreaField("Conditions, one per line", render_kw={"rows": 4})
    interval_s = StringField("Every (seconds)")
    cron = StringField("or on a cron schedule")
    timezone = StringField("Time zone of the cron schedule", default="UTC")
    tags = StringField("Tags, separated by commas")
    stability_target = StringField("Stability target (%)", default="99")
    enabled = BooleanField("Enabled", default=True)
    own_alert = BooleanField("Own alert policy (otherwise the global defaults)")
    alert_emails = StringField("Alert emails, separated by commas")
    failure_threshold = StringField("Failures before an alert", default="3")
    success_threshold = StringField("Passes before it resolves", default="2")
    reminder_interval_s = StringField("Remind every (seconds, 0: never)", default="0")
    send_on_resolved = BooleanField("Email when resolved", default=True)

    def to_spec(self) -> dict[str, Any]:
        """The rule these fields describe, as the API's JSON (not yet validated)."""
        kind = self.kind.data or "http"
        return {
            "name": (self.name.data or "").strip(),
            "kind": kind,
            "target": self._target(kind),
            "conditions": _lines(self.conditions.data),
            "interval_s": _number(self.interval_s.data),
            "cron": (self.cron.data or "").strip() or None,
            "timezone": (self.timezone.data or "").strip() or "UTC",
            "enabled": bool(self.enabled.data),
            "tags": [t.strip() for t in (self.tags.data or "").split(",") if t.strip()],
            "stability_target": _percent(self.stability_target.data),
            "alert": self._alert() if self.own_alert.data else None,
        }

    def _target(self, kind: str) -> dict[str, Any]:
        target: dict[str, Any]
        if kind == "http":
            target = {"url": (self.url.data or "").strip(), "method": self.method.data}
            if self.headers.data and self.headers.data.strip():
                target["headers"] = _headers(self.headers.data)
            if self.body.data:  # browsers send a textarea's line breaks as CRLF
                target["body"] = _unix_lines(self.body.data)
            target["follow_redirects"] = bool(self.follow_redirects.data)
            target["verify_tls"] = bool(self.verify_tls.data)
        elif kind == "sql":
            target = {"datasource": (self.datasource.data or "").strip(),
                      "query": _unix_lines(self.query.data or "")}  # fmt: skip
        else:
            target = {"host": (self.host.data or "").strip(), "port": _number(self.port.data)}
        timeout = _number(self.timeout_s.data)
        if timeout is not None:
            target["timeout_s"] = timeout
        return target

    def _alert(self) -> dict[str, Any]:
        emails = re.split(r"[,\s]+", self.alert_emails.data or "")
        return {
            "emails": [e for e in emails if e],
            "failure_threshold": _number(self.failure_threshold.data),
            "success_threshold": _number(self.success_threshold.data),
            "reminder_interval_s": _number(self.reminder_interval_s.data) or 0,
            "send_on_resolved": bool(self.send_on_resolved.data),
        }

    def fill(self, spec: Mapping[str, Any]) -> None:
        """Set the fields from a stored rule's spec (the edit form's first view)."""
        target, alert = spec.get("target") or {}, spec.get("alert")
        values: dict[str, Any] = {
            "name": spec["name"], "kind": spec["kind"], "conditions": "\n".join(spec["conditions"]),
            "interval_s": _text(spec.get("interval_s")), "cron": spec.get("cron") or "",
            "timezone": spec.get("timezone") or "UTC", "enabled": spec.get("enabled", True),
            "tags": ", ".join(spec.get("tags") or []),
            "stability_target": f"{round(float(spec.get('stability_target', 0.99)) * 100, 8):.10g}",
            "headers": "\n".join(f"{k}: {v}" for k, v in (target.get("headers") or {}).items()),
            "port": _text(target.get("port")), "timeout_s": _text(target.get("timeout_s")),
            "own_alert": alert is not None,
        }  # fmt: skip
        for name in ("url", "method", "body", "datasource", "query", "host"):
            values[name] = target.get(name, getattr(self, name).default)
        for name in ("follow_redirects", "verify_tls"):
            values[name] = target.get(name, True)
        if alert:
            values.update(alert_emails=", ".join(alert.get("emails") or []))
            for key in ("failure_threshold", "success_threshold", "reminder_interval_s"):
                values[key] = _text(alert.get(key))
            values["send_on_resolved"] = alert.get("send_on_resolved", True)
        for name, value in values.items():
            getattr(self, name).data = value

    def show_errors(self, errors: Iterable[FieldError]) -> None:
        """Put each spec error on the field it belongs to; the rest on the form."""
        for error in errors:
            name, message = self._field_for(error)
            field = getattr(self, name, None) if name else None
            if field is None:
                self.form_errors.append(f"{error.field}: {error.message}")
            else:
                field.errors = [*field.errors, message]

    def _field_for(self, error: FieldError) -> tuple[str | None, str]:
        path = error.field
        index = _INDEX.search(path)
        head, _, rest = _INDEX.sub("", path).partition(".")
        message = error.message
        if head == "conditions" and index:  # the nth condition is on the nth non-blank line
            line = _line_of(self.conditions.data, int(index.group(1)))
            return "conditions", f"line {line}: {message}"  # the message names the position
        if head == "target":
            return (_TARGET_FIELDS.get(rest.split(".")[0]) if rest else "url"), message
        if head == "alert":
            return (_ALERT_FIELDS.get(rest.split(".")[0]) if rest else "alert_emails"), message
        return (head if head in self._fields else None), message


class ImportForm(FlaskForm):
    """Rules as YAML: a file, or text pasted in."""

    file = FileField("YAML file")
    text = TextAreaField("or paste YAML", render_kw={"rows": 12})


def _line_of(text: str | None, nth: int) -> int:
    """The line number (from 1) of the ``nth`` non-blank line of ``text``."""
    filled = [i for i, line in enumerate((text or "").splitlines(), 1) if line.strip()]
    return filled[nth] if nth < len(filled) else nth + 1


def _unix_lines(text: str) -> str:
    return text.replace("\r\n", "\n")


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _headers(text: str) -> dict[str, str] | str:
    """ "Name: value" lines as a dict; a line without a colon is left for the spec to refuse."""
    headers: dict[str, str] = {}
    for line in _lines(text):
        name, colon, value = line.partition(":")
        if not colon:
            return text
        headers[name.strip()] = value.strip()
    return headers


def _number(text: str | None) -> int | float | str | None:
    """An int or float from a field, None when empty; other text goes on to be refused."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _percent(text: str | None) -> float | str | None:
    number = _number((text or "").rstrip("% "))
    if isinstance(number, int | float):
        return round(number / 100, 10)
    return number


def _text(value: Any) -> str:
    return "" if value is None else f"{value}"
