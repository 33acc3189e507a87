"""GET /metrics at scale: one scrape over many rules' daily rollups, on PostgreSQL.

Usage: python bench/metrics_bench.py [--rules N] [--days D] [--repeat R]
Creates N rules with D days of daily rollups (histogram counts included; /metrics reads no
hourly rollups, so none are made), some incidents and outbox rows, in a fresh database. Times
R scrapes through the Flask test client with the collection cache off (every scrape reads
the database; the sums of days before yesterday kept, as between refreshes) and on, the
database part alone, and a few scrapes that re-read every day (a process's first scrape, and
one every RollupSums.refresh_s); explains the recent-days statement; checks the scraped
totals against the table; measures what the histogram columns add to a daily row.
Prints progress on stderr and a JSON dict last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import make_rules, say, summary_ms  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from rulewatch import create_app  # noqa: E402
from rulewatch.config import load_settings  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import DURATION_BOUNDS_MS, LAG_BOUNDS_MS, utcnow  # noqa: E402
from rulewatch.services.metrics import (  # noqa: E402
    RollupSums,
    deployment_figures,
    kind_sums_query,
)
from rulewatch.web.metrics import COLLECTOR  # noqa: E402

PER_DAY = 1440  # a 60 s interval
NO_DATA_EVERY = 500
# cumulative share (percent) of a day's runs at or under each bound, before a per-rule shift
DURATION_SHARES = (40, 60, 80, 90, 95, 98, 99, 100)
LAG_SHARES = (70, 90, 97, 99, 100, 100, 100, 100, 100)


def _daily_sql() -> str:
    """One daily row per rule and day, histogram columns cumulative as the upsert writes them."""
    shifted = "LEAST(100, {p} + (r.id % 5) * 5)"
    duration = [f"{PER_DAY} * {shifted.format(p=p)} / 100" for p in DURATION_SHARES]
    lag = [f"{PER_DAY} * {shifted.format(p=p)} / 100" for p in LAG_SHARES]
    columns = (
        [f"duration_le_{b}ms" for b in DURATION_BOUNDS_MS]
        + ["lag_count", "lag_sum_ms"]
        + [f"lag_le_{b}ms" for b in LAG_BOUNDS_MS]
    )
    values = [*duration, str(PER_DAY), f"{PER_DAY} * (100 + r.id % 900)", *lag]
    return f"""
INSERT INTO rollups_daily (rule_id, bucket, passed, failed, errors, maintenance,
                           duration_sum_ms, duration_max_ms, {", ".join(columns)})
SELECT r.id, d.day, {PER_DAY} - x.failed - x.errors, x.failed, x.errors, 0,
       {PER_DAY} * (20 + r.id % 80), 3 * (20 + r.id % 80), {", ".join(values)}
FROM generate_series(CAST(:first AS timestamp), CAST(:last AS timestamp), interval '1 day')
     WITH ORDINALITY AS d(day, n)
CROSS JOIN rules AS r
CROSS JOIN LATERAL (
    SELECT (r.id * 7919 + d.n * 104729) % 7 AS failed, CASE WHEN (r.id + d.n) % 97 = 0
           THEN 1 ELSE 0 END AS errors
) AS x
WHERE r.id % {NO_DATA_EVERY} <> 0
ORDER BY d.day, r.id
"""


OTHER_SQL = [
    """INSERT INTO incidents (rule_id, rule_name, opened_at, resolved_at)
       SELECT id, name, :now, CASE WHEN id % 10 = 0 THEN NULL ELSE :now END
       FROM rules WHERE id % 20 = 0""",
    """INSERT INTO notifications (rule_id, kind, recipients, subject, body_text, body_html,
                                  status, attempts, created_at)
       SELECT id, 'firing', '["ops@example.com"]', 'x', 'x', 'x',
              CASE WHEN id % 100 = 0 THEN 'pending' WHEN id % 333 = 0 THEN 'failed'
                   ELSE 'sent' END, 1, :now
       FROM rules WHERE id % 10 = 0""",
]


@contextmanager
def metrics_database(rules: int, days: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh database with ``rules`` rules and ``days`` days of daily rollups; dropped after."""
    with scratch_database() as url:
        t0 = time.perf_counter()
        upgrade(url)
        now = datetime.now(UTC)
        engine = create_engine(url)
        try:
            make_rules(engine, rules, now)
            last = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
            with engine.begin() as conn:
                daily = conn.execute(
                    text(_daily_sql()), {"first": last - timedelta(days=days - 1), "last": last}
                ).rowcount
                for sql in OTHER_SQL:
                    conn.execute(text(sql), {"now": now.replace(tzinfo=None)})
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            setup = {"daily_rows": daily, "setup_s": round(time.perf_counter() - t0, 1),
                     "row_bytes": _row_bytes(engine)}  # fmt: skip
        finally:
            engine.dispose()
        say(f"{rules} rules, {daily} daily rollups: {setup}")
        yield url, setup


def _row_bytes(engine: Engine) -> dict[str, float]:
    """Bytes per daily row (heap and indexes), and per row of the same rows without histograms."""
    base = ("rule_id, bucket, passed, failed, errors, maintenance, duration_sum_ms,"
            " duration_max_ms")  # fmt: skip
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE rollups_plain AS SELECT {base} FROM rollups_daily"))
        conn.execute(text("ALTER TABLE rollups_plain ADD PRIMARY KEY (rule_id, bucket)"))
        conn.execute(text("CREATE INDEX ix_rollups_plain_bucket ON rollups_plain (bucket)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE rollups_plain"))
        rows = conn.scalar(text("SELECT count(*) FROM rollups_daily")) or 1
        sizes = {t: conn.scalar(text(f"SELECT pg_total_relation_size('{t}')")) or 0
                 for t in ("rollups_daily", "rollups_plain")}  # fmt: skip
        conn.execute(text("DROP TABLE rollups_plain"))
    added, without = (
        (sizes["rollups_daily"] - sizes["rollups_plain"]) / rows,
        sizes["rollups_plain"] / rows,
    )
    return {"with_histograms": round(without + added, 1), "without": round(without, 1),
            "added_per_rule_730_days_kb": round(added * 730 / 1000, 1)}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the database, time scrapes with and without the cache; the database is dropped."""
    home = Path(tempfile.mkdtemp(prefix="rulewatch-metricsbench-"))
    try:
        with metrics_database(args.rules, args.days) as (url, setup):
            base = load_settings({"RULEWATCH_HOME": str(home)})
            settings = replace(base, database_url=url, broker_url="memory://",
                               result_backend="cache+memory://")  # fmt: skip
            app = create_app(settings)
            try:
                out = measure(app, url, args)
            finally:
                app.extensions["rulewatch"].engine.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"bench": "metrics", "rules": args.rules, "days": args.days, **setup, **out,
            "goal_p95_ms": args.goal_ms,
            "meets_goal": out["scrape_uncached_ms"]["p95"] <= args.goal_ms}  # fmt: skip


def measure(app: Any, url: str, args: argparse.Namespace) -> dict[str, Any]:
    client = app.test_client()
    collector = app.extensions[COLLECTOR]
    factory = app.extensions["rulewatch"].factory

    def scrape() -> str:
        response = client.get("/metrics")
        if response.status_code != 200:
            raise RuntimeError(f"/metrics answered {response.status_code}: {response.text[:300]}")
        return str(response.text)

    def figures() -> None:
        with factory() as session:
            deployment_figures(session, utcnow(), collector.sums)

    def refresh() -> None:
        collector.sums = RollupSums()  # as at a process's first scrape, or every refresh_s
        scrape()

    collector.ttl_s = 0  # every scrape reads the database
    body = scrape()  # warm-up: pool, statement compilation, the kept sums of older days
    uncached = _times(scrape, args.repeat)
    database = _times(figures, args.repeat)
    refreshes = _times(refresh, max(1, args.repeat // 5))
    collector.ttl_s = 3600
    scrape()
    cached = _times(scrape, args.repeat)
    result = {
        "scrape_uncached_ms": summary_ms(uncached),
        "database_ms": summary_ms(database),
        "scrape_cached_ms": summary_ms(cached),
        "scrape_rereading_all_days_ms": summary_ms(refreshes),
        "refresh_s": collector.sums.refresh_s,
        "response_bytes": len(body.encode()),
        "explain_recent_days": _explain(url),
        "check": _check(url, body),
    }
    say(json.dumps(result))
    return result


def _times(call: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def _explain(url: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the per-kind sums of yesterday and today, read at every scrape."""
    from sqlalchemy.dialects import postgresql

    from rulewatch.models import DailyRollup
    from rulewatch.services.rollups import day_of

    since = day_of(utcnow()) - timedelta(days=1)
    statement = kind_sums_query(DailyRollup.bucket >= since).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        plan = [r[0] for r in conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {statement}"))]
    engine.dispose()
    scans = [line.strip() for line in plan if "Scan" in line]
    return {"execution_ms": float(plan[-1].split(":")[1].split()[0]), "scans": scans}


def _check(url: str, body: str) -> dict[str, Any]:
    """The scraped totals against sums straight from the table."""
    scraped: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == "rulewatch_verifications_total":
                scraped[s.labels["status"]] = scraped.get(s.labels["status"], 0) + s.value
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT sum(passed), sum(failed), sum(errors), sum(maintenance) FROM rollups_daily"
            )
        ).one()
    engine.dispose()
    table = dict(
        zip(("pass", "fail", "error", "maintenance"), (int(v or 0) for v in row), strict=True)
    )
    return {"scraped": scraped, "table": table, "totals_match": scraped == table}


def parser() -> argparse.ArgumentParser:
    """The bench's options; ``parser().parse_args([])`` gives the defaults."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rules", type=int, default=10_000)
    p.add_argument("--days", type=int, default=30, help="days of daily rollups")
    p.add_argument("--repeat", type=int, default=30, help="timed scrapes of each kind")
    p.add_argument("--goal-ms", type=float, default=100, help="uncached scrape p95 goal")
    return p


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
