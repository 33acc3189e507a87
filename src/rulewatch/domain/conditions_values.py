"""Read placeholder values out of an Observation, and turn values into numbers or text."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from rulewatch.domain.conditions_syntax import Placeholder, Step, read_duration, read_number
from rulewatch.domain.observation import Observation

MAX_SHOWN = 80
_EXACT_DIGITS_CAP = 1_000


@dataclass(frozen=True)
class Known:
    """A value read from the observation; ``None`` is a JSON or SQL null."""

    value: object


@dataclass(frozen=True)
class Unknown:
    """A value that could not be read: ``shown`` in the resolved text, ``reason`` for people."""

    shown: str
    reason: str
    # no history yet (a rule's first runs): the condition is not judged, rather than failed
    awaiting_history: bool = False


Resolved = Known | Unknown


class ObservationReader:
    """One observation, read placeholder by placeholder; its body is parsed as JSON at most once."""

    def __init__(self, observation: Observation) -> None:
        self.observation = observation
        self._json: Resolved | None = None

    def read(self, placeholder: Placeholder) -> Resolved:
        """The value of ``placeholder`` in this observation, or why it cannot be read."""
        return _READERS[placeholder.name](self, placeholder)

    def body_json(self) -> Resolved:
        """The body parsed as JSON (numbers as exact Decimals), or why it is not JSON."""
        if self._json is None:
            self._json = _parse_json(self.observation.body or "")
        return self._json


def _parse_json(body: str) -> Resolved:
    if not body.strip():
        return Unknown("invalid", "body is empty, not JSON")
    try:
        # Decimal for every number: floats are never rounded and huge ints escape the
        # int-from-string digit limit.
        return Known(json.loads(body, parse_float=Decimal, parse_int=Decimal))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        return Unknown("invalid", f"body is not valid JSON ({exc.msg} at {where})")
    except (ValueError, RecursionError) as exc:
        return Unknown("invalid", f"body is not valid JSON ({exc})")


def _absent(reader: ObservationReader, p: Placeholder, what: str) -> Unknown:
    obs = reader.observation
    cause = obs.failure or obs.fault
    if cause is None:
        cause = "not connected" if not obs.connected else f"the probe measured no {what}"
    return Unknown("n/a", f"{p.text} unavailable: {cause}")


def _measured(what: str, attribute: str) -> Callable[[ObservationReader, Placeholder], Resolved]:
    def read(reader: ObservationReader, p: Placeholder) -> Resolved:
        value = getattr(reader.observation, attribute)
        return _absent(reader, p, what) if value is None else Known(value)

    return read


def _connected(reader: ObservationReader, p: Placeholder) -> Resolved:
    return Known(reader.observation.connected)


def _body(reader: ObservationReader, p: Placeholder) -> Resolved:
    if reader.observation.body is None:
        return _absent(reader, p, "response body")
    if not p.steps:
        return Known(reader.observation.body)
    parsed = reader.body_json()
    if isinstance(parsed, Unknown):
        return parsed
    return _walk(parsed.value, p.steps, f"path {p.path} not found in body")


def _walk(node: object, steps: Sequence[Step], missing: str) -> Resolved:
    for step in steps:
        child = _child(node, step)
        if child is None:
            return Unknown("missing", missing)
        node = child.value
    return Known(node)


def _child(node: object, step: Step) -> Known | None:
    if isinstance(step, int) and isinstance(node, list) and step < len(node):
        return Known(node[step])
    if isinstance(step, str) and isinstance(node, Mapping) and step in node:
        return Known(node[step])
    return None


def _header(reader: ObservationReader, p: Placeholder) -> Resolved:
    obs, name = reader.observation, str(p.steps[0])
    if not obs.connected and not obs.headers:
        return _absent(reader, p, "headers")
    # HTTP header names are case-insensitive; probes keep the server's spelling.
    found = [v for k, v in obs.headers.items() if k.lower() == name.lower()]
    return Known(found[0]) if found else Unknown("missing", f"header {name} not in the response")


def _no_rows(reader: ObservationReader, p: Placeholder) -> Unknown:
    if reader.observation.rows == 0:
        return Unknown("n/a", f"{p.text} unavailable: the query returned no rows")
    return _absent(reader, p, "query result")


def _value(reader: ObservationReader, p: Placeholder) -> Resolved:
    obs = reader.observation
    # None is SQL NULL only when a row came back; otherwise nothing was measured.
    if obs.value is None and not obs.rows:
        return _no_rows(reader, p)
    return Known(obs.value)


def _row(reader: ObservationReader, p: Placeholder) -> Resolved:
    row = reader.observation.row
    if row is None:
        return _no_rows(reader, p)
    column = _column(row, str(p.steps[0]))
    if column is None:
        columns = ", ".join(map(str, row)) or "none"
        return Unknown("missing", f"column {p.steps[0]} not in the first row (columns: {columns})")
    return _walk(row[column], p.steps[1:], f"path {p.path} not found in the first row")


def _column(row: Mapping[str, Any], name: str) -> str | None:
    if name in row:
        return name
    # Databases fold unquoted names differently (PostgreSQL lower, Oracle upper).
    folded = [key for key in row if str(key).lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _previous_value(reader: ObservationReader, p: Placeholder) -> Resolved:
    previous = reader.observation.previous_value
    if previous is None:
        return Unknown("n/a", f"{p.text} unavailable: no previous value yet", True)
    return Known(previous)


def _change_percent(reader: ObservationReader, p: Placeholder) -> Resolved:
    current = _value(reader, p)
    if isinstance(current, Unknown):
        return current
    number = as_number(current.value)
    if number is None:
        return Unknown("invalid", f"{p.text} needs a numeric [VALUE], not {shown(current.value)}")
    average = as_number(reader.observation.recent_average)
    if average is None:
        return Unknown("n/a", f"{p.text} unavailable: no recent average yet", True)
    if average == 0:
        return Unknown("invalid", f"{p.text} undefined: the recent average is 0")
    try:
        return Known(percent_change(number, average))
    except ArithmeticError:  # decimal Overflow on absurd magnitudes
        return Unknown("invalid", f"{p.text} out of range for [VALUE] {shown(number)}")


def percent_change(current: Decimal, average: Decimal) -> Decimal:
    """How far ``current`` is from ``average``, in percent of the average (signed)."""
    with localcontext() as ctx:
        # Subtract exactly, however far apart the magnitudes; only the ratio is rounded.
        ctx.prec = min(_EXACT_DIGITS_CAP, _digits_spanned(current, average))
        delta = current - average
    return delta * 100 / abs(average)


def _digits_spanned(a: Decimal, b: Decimal) -> int:
    lowest = min(x.adjusted() - len(x.as_tuple().digits) + 1 for x in (a, b))
    return max(a.adjusted(), b.adjusted()) - lowest + 2


_READERS: dict[str, Callable[[ObservationReader, Placeholder], Resolved]] = {
    "STATUS": _measured("HTTP status", "status"),
    "RESPONSE_TIME": _measured("response time", "response_time_ms"),
    "BODY": _body,
    "HEADERS": _header,
    "CONNECTED": _connected,
    "IP": _measured("IP address", "ip"),
    "CERTIFICATE_EXPIRATION": _measured("TLS certificate", "certificate_expiration_ms"),
    "VALUE": _value,
    "ROWS": _measured("row count", "rows"),
    "ROW": _row,
    "PREVIOUS_VALUE": _previous_value,
    "CHANGE_PERCENT": _change_percent,
}


def as_number(value: object) -> Decimal | None:
    """``value`` as an exact Decimal when it is a number or reads as one (or as a duration)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr() is the shortest text that round-trips, so 0.1 stays 0.1, not 0.1000000000000000055.
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str):
        number = read_number(value)
        return number if number is not None else read_duration(value)
    return None


def as_text(value: object) -> str:
    """``value`` as text for string comparison and patterns: true, null, 1.5, {"a":1} ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | dict):
        return _json_text(value)
    return str(value)


def _json_text(node: object) -> str:
    # json.dumps cannot write a Decimal as a bare number, and the body's numbers are Decimals.
    if isinstance(node, list):
        return "[" + ",".join(_json_text(item) for item in node) + "]"
    if isinstance(node, dict):
        items = (
            json.dumps(str(k), ensure_ascii=False) + ":" + _json_text(v) for k, v in node.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(node, str):
        return json.dumps(node, ensure_ascii=False)
    return as_text(node)


def shown(value: object) -> str:
    """``value`` for display on one line, truncated when long (display only)."""
    text = as_text(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    if len(text) <= MAX_SHOWN:
        return text
    return f"{text[: MAX_SHOWN - 20]}...({len(text)} chars)"
