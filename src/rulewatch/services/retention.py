"""Retention: old raw verifications and rollups are deleted in small batches."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import Settings
from rulewatch.db import transaction
from rulewatch.models import DailyRollup, HourlyRollup, Verification

STEP = 2000


def prune_history(
    factory: sessionmaker[Session], settings: Settings, now: datetime
) -> dict[str, int]:
    """Delete what is older than the retention periods; short transactions, no long locks."""
    return {
        "verifications": _prune(
            factory, Verification, Verification.started_at,
            now - timedelta(days=settings.retention_days), Verification.id,
        ),
        "hourly": _prune(
            factory, HourlyRollup, HourlyRollup.bucket,
            now - timedelta(days=settings.hourly_retention_days), None,
        ),
        "daily": _prune(
            factory, DailyRollup, DailyRollup.bucket,
            now - timedelta(days=settings.daily_retention_days), None,
        ),
    }  # fmt: skip


def _prune(
    factory: sessionmaker[Session], model: Any, column: Any, cutoff: datetime, key: Any
) -> int:
    total = 0
    while True:
        with transaction(factory) as session:
            if key is not None:
                ids = list(session.scalars(select(key).where(column < cutoff).limit(STEP)))
                if ids:
                    session.execute(delete(model).where(key.in_(ids)))
                n = len(ids)
            else:
                n = session.execute(delete(model).where(column < cutoff)).rowcount or 0  # type: ignore[attr-defined]
        total += n
        if n < STEP:
            return total
