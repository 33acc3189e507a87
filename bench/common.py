"""Shared bench helpers: a throwaway PostgreSQL database with many rules and 30 days of rollups,
and `rulewatch` processes on Redis started beside the bench.

The rollups are made server-side (``INSERT ... SELECT ... FROM generate_series``), in time
order as the verification path writes them: hourly rows for every rule and hour of the last
``days`` days, and daily rows aggregated from those hourly rows, so a report over the window
must add up to exactly the hourly totals (``rollup_totals``), which the benches check.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.database import scratch_database  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule  # noqa: E402

PER_HOUR = 60  # verifications per rule per hour: a 60 s interval
NO_DATA_EVERY = 500  # every 500th rule has no rollups at all ("no data" in the report)
TARGETS = (0.95, 0.99, 0.999)
TEAMS = 20

# One row per (hour, rule), in hour order. Failures come in some hours only, more often for
# some rules than others (0 to 19.5% of hours, 1 to 5 fails each), so rates and whether a rule
# meets its target differ from rule to rule; one hour in 97 carries an error.
HOURLY_SQL = """
INSERT INTO rollups_hourly
    (rule_id, bucket, passed, failed, errors, duration_sum_ms, duration_max_ms)
SELECT r.id, h.bucket, :per_hour - x.failed - x.errors, x.failed, x.errors,
       :per_hour * (20 + r.id % 80), 3 * (20 + r.id % 80) + h.n % 7
FROM generate_series(CAST(:first AS timestamp), CAST(:last AS timestamp),
                     interval '1 hour') WITH ORDINALITY AS h(bucket, n)
CROSS JOIN rules AS r
CROSS JOIN LATERAL (
    SELECT CASE WHEN (r.id * 7919 + h.n * 104729) % 1000 < (r.id % 40) * 5
                THEN 1 + (r.id + h.n) % 5 ELSE 0 END AS failed,
           CASE WHEN (r.id + h.n) % 97 = 0 THEN 1 ELSE 0 END AS errors
) AS x
WHERE r.id % :no_data <> 0
ORDER BY h.bucket, r.id
"""

DAILY_SQL = """
INSERT INTO rollups_daily
    (rule_id, bucket, passed, failed, errors, duration_sum_ms, duration_max_ms)
SELECT rule_id, date_trunc('day', bucket) AS day, sum(passed), sum(failed), sum(errors),
       sum(duration_sum_ms), max(duration_max_ms)
FROM rollups_hourly
GROUP BY rule_id, day
ORDER BY day, rule_id
"""

TAGS_SQL = """
INSERT INTO rule_tags (rule_id, tag)
SELECT id, 'team-' || (id % :teams) FROM rules
UNION ALL
SELECT id, 'bench' FROM rules
"""


@dataclass(frozen=True)
class BenchDatabase:
    """A populated database: its URL, the time its rollups end at, and what it holds."""

    url: str
    now: datetime
    rules: int
    days: int
    hourly_rows: int
    daily_rows: int
    setup_s: float
    table_mb: dict[str, float]


def make_rules(engine: Engine, count: int, now: datetime) -> None:
    """``count`` http rules with mixed stability targets and two tags each (bulk Core insert)."""
    rows = [
        {"name": f"bench rule {i:06d}", "kind": "http",
         "target": {"url": f"http://127.0.0.1:9/r/{i}", "timeout_s": 10},
         "conditions": ["[STATUS] == 200", "[RESPONSE_TIME] < 500"], "interval_s": 60,
         "timezone": "UTC", "enabled": True, "stability_target": TARGETS[i % len(TARGETS)],
         "created_at": now, "updated_at": now, "next_due_at": now + timedelta(hours=1)}
        for i in range(count)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Rule), rows)
        conn.execute(text(TAGS_SQL), {"teams": TEAMS})


def make_rollups(engine: Engine, now: datetime, days: int) -> tuple[int, int]:
    """Hourly rollups for the ``days * 24`` hours ending with ``now``'s hour, and daily ones."""
    last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    first = last - timedelta(hours=days * 24 - 1)
    with engine.begin() as conn:
        hourly = conn.execute(
            text(HOURLY_SQL),
            {"first": first, "last": last, "per_hour": PER_HOUR, "no_data": NO_DATA_EVERY},
        ).rowcount
        daily = conn.execute(text(DAILY_SQL)).rowcount
    # as autovacuum would have done by now: statistics, and a visibility map for index-only scans
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return hourly, daily


def table_sizes(engine: Engine) -> dict[str, float]:
    """Total size (heap, indexes, toast) of the tables the benches read, in MB."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relname IN ('rules', 'rule_tags', 'rollups_hourly', 'rollups_daily')"
            )
        ).all()
    return {name: round(size / 2**20, 1) for name, size in rows}


def rollup_totals(engine: Engine) -> tuple[int, int, int]:
    """(pass, fail, error) over all hourly rollups: what a report over the window must show."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT sum(passed), sum(failed), sum(errors) FROM rollups_hourly")
        ).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


@contextmanager
def bench_database(
    rules: int, days: int = 30, now: datetime | None = None, log: bool = True
) -> Iterator[BenchDatabase]:
    """A fresh, migrated PostgreSQL database with ``rules`` rules and rollups up to ``now``.

    The database is dropped on the way out, whatever happened inside.
    """
    with scratch_database() as url:
        t0 = time.perf_counter()
        upgrade(url)
        now = now or datetime.now(UTC)
        engine = create_engine(url)
        try:
            make_rules(engine, rules, now)
            if log:
                say(f"{rules} rules in {time.perf_counter() - t0:.1f} s; making rollups...")
            hourly, daily = make_rollups(engine, now, days)
            sizes = table_sizes(engine)
        finally:
            engine.dispose()
        setup_s = time.perf_counter() - t0
        if log:
            say(f"{hourly} hourly and {daily} daily rollups, setup {setup_s:.1f} s, MB {sizes}")
        yield BenchDatabase(url, now, rules, days, hourly, daily, round(setup_s, 1), sizes)


def report_now(hour: int | None) -> datetime:
    """The latest past ``hour``:30 UTC (the real now when ``hour`` is None).

    A report reads whole UTC days from the daily rollups and the hours at both ends of its
    window from the hourly ones: about 25 hours' worth at midday, but one hour just after (or
    before) midnight, so a report timed at a fixed hour of the day is the comparable figure.
    """
    real = datetime.now(UTC)
    if hour is None:
        return real
    at = real.replace(hour=hour, minute=30, second=0, microsecond=0)
    return at if at <= real else at - timedelta(days=1)


def hourly_hours_read(window: str, now: datetime) -> int:
    """How many hours of hourly rollups a report over ``window`` at ``now`` reads."""
    from rulewatch.domain.stability import parse_window, plan_buckets

    plan = plan_buckets(parse_window(window), now)
    return sum(int((b - a) / timedelta(hours=1)) for a, b in plan.hourly)


def say(message: str) -> None:
    """Progress on stderr, so stdout ends with the JSON result alone."""
    print(message, file=sys.stderr, flush=True)


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50, p95 (linear interpolation between ranks) and max of durations, in milliseconds."""
    ms = sorted(s * 1000 for s in samples_s)
    if not ms:
        return {"n": 0}
    p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
    return {
        "n": len(ms),
        "p50": round(statistics.median(ms), 1),
        "p95": round(p95, 1),
        "max": round(ms[-1], 1),
        "mean": round(statistics.fmean(ms), 1),
    }


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20) -> None:
    """Wait until something listens on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def wait_http(url: str, timeout: float = 60, alive: Any = None) -> None:
    """Wait until ``url`` answers 200; ``alive()`` returning False aborts the wait early."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the server exited before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s ({last})")


def rulewatch_env(
    home: str | Path, database_url: str, broker: str, **settings: str
) -> dict[str, str]:
    """This process's environment for `rulewatch` processes: their home, the database, Redis
    ``broker`` as broker and result backend, 1 s ticks, and ``settings`` (RULEWATCH_...)."""
    return {**os.environ, "RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": database_url,
            "RULEWATCH_BROKER_URL": broker, "RULEWATCH_RESULT_BACKEND": broker,
            "RULEWATCH_TICK_S": "1", **settings}  # fmt: skip


def start_rulewatch(
    roles: Sequence[Sequence[str]], env: Mapping[str, str], log: Path, loglevel: str = "WARNING"
) -> list[subprocess.Popen[bytes]]:
    """Start ``python -m rulewatch ROLE --loglevel LOGLEVEL`` for each of ``roles``, all
    writing to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:  # each process holds its own copy of the file
        return [subprocess.Popen([sys.executable, "-m", "rulewatch", *role, "--loglevel", loglevel],
                                 env=env, stdout=out, stderr=out) for role in roles]  # fmt: skip


def run_as_script(run: Any, parser: Any) -> None:
    """A bench's command line: its options, its clean-up on SIGTERM too (a bench killed by
    its caller still stops what it started), its result as JSON."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print(json.dumps(run(parser().parse_args()), indent=2))
