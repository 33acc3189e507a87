"""What a probe saw when it checked a target; the domain judges it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Observation:
    """Measured facts of one check, gathered by a probe and judged by conditions.

    ``failure`` is set when the target could not be reached or answered badly at the
    transport level (refused, timed out, DNS): that is a *fail* of the rule.
    ``fault`` is set when rulewatch itself could not evaluate the rule (bad query, missing
    data source, internal error): that is an *error*, excluded from stability rates.
    """

    connected: bool
    response_time_ms: float | None = None
    failure: str | None = None
    fault: str | None = None
    # http
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    ip: str | None = None
    certificate_expiration_ms: float | None = None
    # sql
    value: Any = None
    rows: int | None = None
    row: Mapping[str, Any] | None = None
    # history (supplied by the verification service from earlier sql verifications)
    previous_value: Any = None
    recent_average: float | None = None

    def measured(self) -> dict[str, Any]:
        """The values worth storing with a verification (JSON-safe, body excluded)."""
        out: dict[str, Any] = {"connected": self.connected}
        for key in ("response_time_ms", "status", "ip", "certificate_expiration_ms", "rows"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.value is not None:
            out["value"] = _json_safe(self.value)
        return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
