"""A point of a rule's history: what the rule page's chart draws."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class HistoryPoint:
    """One verification, or one rollup bucket, of a rule's history."""

    at: datetime
    duration_ms: float | None  # the mean over a bucket; None: no duration to draw
    passed: int
    failed: int
    errors: int
    maintenance: int = 0  # runs in a maintenance window: their tick shows only if alone

    @property
    def outcome(self) -> str | None:
        """The worst outcome in the point (fail, error, pass, maintenance), None if empty."""
        worst_first = (
            ("fail", self.failed), ("error", self.errors),
            ("pass", self.passed), ("maintenance", self.maintenance),
        )  # fmt: skip
        return next((name for name, n in worst_first if n > 0), None)
