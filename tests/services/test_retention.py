"""Retention keeps storage bounded and keeps what the stability windows need."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import load_settings
from rulewatch.db import transaction
from rulewatch.models import Verification, utcnow
from rulewatch.services.retention import prune_history
from rulewatch.services.rollups import Sample, add_samples
from rulewatch.services.rules import create_rule
from rulewatch.services.stability import stability_report
from tests.targets import http_rule

WINDOWS = ("1h", "24h", "7d", "30d")


def _history(factory: sessionmaker[Session], rules: int, days: int) -> None:
    """Every 2 hours for ``days`` days, each rule verified; every fifth run fails."""
    now = utcnow()
    with transaction(factory) as session:
        ids = [create_rule(session, http_rule("http://127.0.0.1:9/", name=f"r{i}"), now).id
               for i in range(rules)]  # fmt: skip
        rows = []
        for step in range(days * 12):
            at = now - timedelta(hours=2 * step, minutes=1)
            for rule_id in ids:
                status = "fail" if step % 5 == 0 else "pass"
                rows.append(Verification(id=str(uuid.uuid4()), rule_id=rule_id, started_at=at,
                                         duration_ms=5.0, status=status, conditions=[],
                                         measured={}, trigger="schedule"))  # fmt: skip
        session.add_all(rows)
        session.flush()
        add_samples(
            session, [Sample(v.rule_id, v.started_at, v.status, v.duration_ms) for v in rows]
        )


def _rates(factory: sessionmaker[Session]) -> dict[str, tuple[object, ...]]:
    now = utcnow()
    with factory() as session:
        out = {}
        for window in WINDOWS:
            report = stability_report(session, window, now)
            out[window] = (report.overall.rate, report.overall.counts)
        return out


def _count(factory: sessionmaker[Session], *where: object) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Verification).where(*where)) or 0  # type: ignore[arg-type]


def test_it_keeps_stability_rates_over_every_window_when_it_prunes(
    factory: sessionmaker[Session],
) -> None:
    _history(factory, rules=3, days=40)
    before = _rates(factory)
    settings = replace(load_settings({}), retention_days=14, keep_per_rule=20)
    removed = prune_history(factory, settings, utcnow())
    assert removed["verifications"] > 0 and removed["over_cap"] > 0
    assert _rates(factory) == before
    assert before["30d"][0] is not None


def test_it_caps_passing_verifications_per_rule_but_keeps_the_failures(
    factory: sessionmaker[Session],
) -> None:
    _history(factory, rules=2, days=20)
    settings = replace(load_settings({}), retention_days=14, keep_per_rule=20)
    failures_in_retention = _count(
        factory, Verification.status == "fail",
        Verification.started_at >= utcnow() - timedelta(days=14),
    )  # fmt: skip
    prune_history(factory, settings, utcnow())
    assert _count(factory, Verification.started_at < utcnow() - timedelta(days=14)) == 0
    assert _count(factory, Verification.status == "fail") == failures_in_retention
    with factory() as session:
        per_rule = session.execute(
            select(Verification.rule_id, func.count())
            .where(Verification.status == "pass")
            .group_by(Verification.rule_id)
        ).all()
    assert per_rule and all(n <= 20 for _, n in per_rule)
