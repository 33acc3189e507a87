"""The web UI's pages at scale: the server time of every page at 10,000 rules, on PostgreSQL.

Usage: python bench/ui_bench.py [--rules N] [--days D] [--repeat R] [--warmup W] [--cold C]
Creates N rules with D days of hourly and daily rollups (bench/common.py, the data of the
report and API benches), then what the pages list: rule states (failing, erroring, paused,
never verified), recent verifications with their condition outcomes (500 over the last 6
hours for the rule whose page is timed), open and resolved incidents, notifications,
maintenance windows, users and tokens. Serves each page through the Flask test client of an
app on that database, signed in with an admin's bearer token, and times W warm-ups then R
requests (time.perf_counter around client.get: the WSGI call in this process, no socket; the
client's own cost is /healthz's figure). The report pages are also timed uncached (C times,
the report cache emptied first), as the first visitor after RULEWATCH_REPORT_CACHE_S sees
them. Counts each page's SQL statements and their time, profiles any page over the goal.
Prints progress on stderr and a JSON dict last.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, event, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import BenchDatabase, bench_database, say, summary_ms  # noqa: E402
from rulewatch import create_app  # noqa: E402
from rulewatch.config import load_settings  # noqa: E402
from rulewatch.db import transaction  # noqa: E402
from rulewatch.models import User  # noqa: E402
from rulewatch.services.maintenance import create_window  # noqa: E402
from rulewatch.services.stability import ReportCache, StabilityReport  # noqa: E402
from rulewatch.services.tokens import create_token  # noqa: E402
from tests.auth import add_user, token_for  # noqa: E402

GOAL_P95_MS = 200
TIMED_RULE_RUNS = 500  # the timed rule's verifications over the last 6 hours
RECENT_RUNS = 20  # every other verified rule's, one a minute up to its last
OPEN_INCIDENTS, RESOLVED_INCIDENTS, NOTIFICATIONS = 50, 200, 1000
USERS, MAINTENANCE_WINDOWS = 12, 12
SEARCH = "rule 0012"  # names are zero-padded ("bench rule 001234"): 100 rules match
TAG = "team-7"
REPORTS = ("report_7d", "report_30d")

# Who needs a look: 1 rule in 40 failing, 1 in 97 erroring, 1 in 50 paused; the rules
# without rollups (1 in 500) never verified.
STATES_SQL = """
UPDATE rules SET
    enabled = id % 50 <> 3,
    last_status = CASE WHEN id % 500 = 0 THEN NULL WHEN id % 40 = 0 THEN 'fail'
                       WHEN id % 97 = 0 THEN 'error' ELSE 'pass' END,
    last_verified_at = CASE WHEN id % 500 = 0 THEN NULL
                            ELSE CAST(:now AS timestamp) - (id % 60) * interval '1 second' END
"""

# ``count`` runs of each rule in [first, last], ``every_s`` apart up to its last one, whose
# status is the rule's last_status; one earlier run in 23 fails (HTTP 503).
VERIFICATIONS_SQL = """
INSERT INTO verifications (id, rule_id, scheduled_for, started_at, duration_ms, status,
                           conditions, measured, error, trigger, in_maintenance)
SELECT gen_random_uuid()::text, r.id, t.at, t.at, t.ms, s.status,
       CASE WHEN s.status = 'error' THEN json_build_array() ELSE json_build_array(
           json_build_object('condition', '[STATUS] == 200',
                             'resolved', s.code || ' == 200', 'ok', s.code = 200),
           json_build_object('condition', '[RESPONSE_TIME] < 500',
                             'resolved', t.ms || ' < 500', 'ok', t.ms < 500)) END,
       CASE WHEN s.status = 'error' THEN json_build_object()
            ELSE json_build_object('status', s.code, 'response_time_ms', t.ms) END,
       CASE s.status WHEN 'fail' THEN 'condition not met: ' || s.code || ' == 200'
                     WHEN 'error' THEN 'connection refused' END,
       'schedule', false
FROM rules AS r
CROSS JOIN generate_series(0, CAST(:count AS integer) - 1) AS g(n)
CROSS JOIN LATERAL (
    SELECT r.last_verified_at - g.n * make_interval(secs => CAST(:every_s AS float)) AS at,
           20 + (r.id * 31 + g.n * 17) % 180 AS ms,
           CASE WHEN g.n = 0 THEN r.last_status
                WHEN (r.id + g.n) % 23 = 0 THEN 'fail' ELSE 'pass' END AS status
) AS t
CROSS JOIN LATERAL (
    SELECT t.status, CASE t.status WHEN 'fail' THEN 503 ELSE 200 END AS code
) AS s
WHERE r.last_verified_at IS NOT NULL AND r.id BETWEEN :first AND :last AND r.id <> :skip
ORDER BY t.at, r.id
"""

INCIDENTS_SQL = [
    """INSERT INTO incidents (rule_id, rule_name, opened_at)
       SELECT id, name, CAST(:now AS timestamp) - (id % 47 + 1) * interval '1 hour'
       FROM rules WHERE last_status = 'fail' AND enabled ORDER BY id LIMIT :open""",
    """INSERT INTO incidents (rule_id, rule_name, opened_at, resolved_at, resolve_reason)
       SELECT id, name, o.at, o.at + (id % 5 + 1) * interval '20 minutes',
              'passed 3 times in a row'
       FROM rules CROSS JOIN LATERAL (
           SELECT CAST(:now AS timestamp) - (id % 29 + 1) * interval '1 day'
                  - (id % 7) * interval '1 hour' AS at) AS o
       WHERE id % 50 = 1 ORDER BY id LIMIT :resolved""",
]

NOTIFICATIONS_SQL = """
INSERT INTO notifications (rule_id, kind, recipients, subject, body_text, body_html, status,
                           attempts, last_error, created_at, sent_at)
SELECT r.id, k.kind, '["ops@example.com", "oncall@example.com"]',
       '[rulewatch] ' || r.name || ' is ' || k.state,
       'Rule ' || r.name || ' is ' || k.state || '.' || repeat(' Condition not met.', 60),
       '<p>Rule <b>' || r.name || '</b> is ' || k.state || '.</p>'
           || repeat('<p>Condition not met.</p>', 60),
       k.status, CASE k.status WHEN 'failed' THEN 5 ELSE 1 END,
       CASE k.status WHEN 'failed' THEN 'SMTP 451: try again later' END,
       k.at, CASE k.status WHEN 'sent' THEN k.at + interval '2 seconds' END
FROM generate_series(1, :count) AS g(n)
JOIN rules AS r ON r.id = 1 + (g.n * 37) % :rules
CROSS JOIN LATERAL (
    SELECT CASE WHEN g.n % 2 = 0 THEN 'firing' ELSE 'resolved' END AS kind,
           CASE WHEN g.n % 2 = 0 THEN 'failing' ELSE 'passing again' END AS state,
           CASE WHEN g.n % 50 = 0 THEN 'failed' WHEN g.n % 100 = 1 THEN 'pending'
                ELSE 'sent' END AS status,
           CAST(:now AS timestamp) - (:count - g.n) * interval '40 minutes' AS at
) AS k
ORDER BY g.n
"""


class CountingReportCache(ReportCache):
    """The app's report cache, counting the reports it computes (none, once it is warm)."""

    computed = 0

    def get(
        self, key: tuple[str, str | None], now: datetime, compute: Callable[[], StabilityReport]
    ) -> StabilityReport:
        """As ReportCache.get; a computation adds one to ``computed``."""

        def counted() -> StabilityReport:
            self.computed += 1
            return compute()

        return super().get(key, now, counted)


def pages(rule_id: int) -> dict[str, str]:
    """The pages timed, by name; the rule pages and the editor show rule ``rule_id``."""
    rule = f"/rules/{rule_id}"
    return {
        "dashboard": "/",
        "dashboard_page_100": "/?page=100",
        "dashboard_status_fail": "/?status=fail",
        "dashboard_search": f"/?q={SEARCH.replace(' ', '+')}",
        "dashboard_tag": f"/?tag={TAG}",
        **{f"rule_{w}": f"{rule}?window={w}" for w in ("1h", "6h", "24h", "7d", "30d")},
        "rule_edit": f"{rule}/edit",
        "rule_new": "/rules/new",
        "report_7d": "/report?window=7d",
        "report_30d": "/report?window=30d",
        "report_download_30d": "/report/download?window=30d",
        "incidents": "/incidents",
        "notifications": "/notifications",
        "notifications_500": "/notifications?limit=500",
        "maintenance": "/maintenance",
        "datasources": "/datasources",
        "users": "/users",
        "tokens": "/tokens",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the database and the app, time every page; the database is dropped."""
    now = datetime.now(UTC)
    rule_id = (args.rules // 400) * 50 + 1  # enabled, with rollups and resolved incidents
    with bench_database(args.rules, args.days, now) as db, tempfile.TemporaryDirectory() as home:
        t0 = time.perf_counter()
        extra = add_activity(db, rule_id)
        app = _app(db.url, Path(home))
        try:
            token = _people_and_windows(app, db.now, rule_id)
            setup_s = round(db.setup_s + time.perf_counter() - t0, 1)
            say(f"activity {extra}, setup {setup_s} s")
            client = app.test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
            measured = measure(app, client, pages(rule_id), args)
        finally:
            app.extensions["rulewatch"].engine.dispose()
    over = [name for name, p in measured["pages"].items() if p["ms"]["p95"] > GOAL_P95_MS]
    return {
        "bench": "ui", "rules": db.rules, "days": db.days, "hourly_rows": db.hourly_rows,
        "daily_rows": db.daily_rows, "rows": extra, "setup_s": setup_s, "rule_id": rule_id,
        "warmup": args.warmup, "repeat": args.repeat, "cold": args.cold,
        "report_cache_s": app.extensions["rulewatch"].settings.report_cache_s, **measured,
        "goal_p95_ms": GOAL_P95_MS, "over_goal": over, "meets_goal": not over,
    }  # fmt: skip


def add_activity(db: BenchDatabase, rule_id: int) -> dict[str, int]:
    """Rule states, verifications, incidents and notifications; rows made, by table."""
    naive_now = db.now.astimezone(UTC).replace(tzinfo=None)
    engine = create_engine(db.url)
    try:
        with engine.begin() as conn:
            conn.execute(text(STATES_SQL), {"now": naive_now})
            recent = conn.execute(text(VERIFICATIONS_SQL), {
                "count": RECENT_RUNS, "every_s": 60, "first": 1, "last": db.rules, "skip": rule_id,
            }).rowcount  # fmt: skip
            timed = conn.execute(text(VERIFICATIONS_SQL), {
                "count": TIMED_RULE_RUNS, "every_s": 6 * 3600 / TIMED_RULE_RUNS,
                "first": rule_id, "last": rule_id, "skip": 0,
            }).rowcount  # fmt: skip
            limits = {"open": OPEN_INCIDENTS, "resolved": RESOLVED_INCIDENTS, "now": naive_now}
            incidents = sum(conn.execute(text(sql), limits).rowcount for sql in INCIDENTS_SQL)
            notifications = conn.execute(
                text(NOTIFICATIONS_SQL),
                {"count": NOTIFICATIONS, "rules": db.rules, "now": naive_now},
            ).rowcount
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return {"verifications": recent + timed, "timed_rule_verifications": timed,
            "incidents": incidents, "notifications": notifications}  # fmt: skip


def _app(url: str, home: Path) -> Flask:
    """The app on ``url``, with an in-memory broker as the tests have (no worker needed)."""
    base = load_settings({"RULEWATCH_HOME": str(home)})
    settings = replace(base, database_url=url, broker_url="memory://",
                       result_backend="cache+memory://")  # fmt: skip
    return create_app(settings)


def _people_and_windows(app: Flask, now: datetime, rule_id: int) -> str:
    """Users with tokens and maintenance windows to list; the bench admin's token."""
    token = token_for(app, "bench-admin", "admin")
    roles = ("viewer", "editor", "admin")
    ids = [add_user(app, f"user{i:02d}", roles[i % 3]) for i in range(USERS)]
    with transaction(app.extensions["rulewatch"].factory) as session:
        for i, user_id in enumerate(ids):
            user = session.get(User, user_id)
            assert user is not None
            for label in ("deploy script", "grafana")[: 1 + i % 2]:
                create_token(session, user, label, now)
        for i in range(MAINTENANCE_WINDOWS):
            create_window(session, _window(i, now, rule_id))
    return token


def _window(i: int, now: datetime, rule_id: int) -> dict[str, Any]:
    """A one-off or weekly window over every rule, a tag or a rule."""
    scope = ("all", "tag", "rule")[i % 3]
    return {
        "name": f"window {i:02d}", "scope": scope,
        "starts_at": (now - timedelta(days=i)).isoformat(), "duration_s": 3600,
        "cron": f"0 {i % 24} * * {i % 7}" if i % 2 else None,
        "timezone": "Europe/Paris", "comment": "planned database work",
        **({"tag": f"team-{i}"} if scope == "tag" else {}),
        **({"rule_id": rule_id + i} if scope == "rule" else {}),
    }  # fmt: skip


def measure(
    app: Flask, client: FlaskClient, paths: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """Cold report requests first, then every page warm; statements and profiles after."""
    runtime = app.extensions["rulewatch"]
    cold = {name: _cold(runtime, client, paths[name], args.cold) for name in REPORTS}
    say(f"uncached reports: {json.dumps(cold)}")
    stale = {name: _stale(runtime, client, paths[name], args.cold) for name in REPORTS}
    say(f"stale reports (served while refreshed): {json.dumps(stale)}")
    cache = runtime.reports = CountingReportCache(runtime.settings.report_cache_s)
    out: dict[str, Any] = {}
    for name, path in paths.items():
        _timed(client, path, args.warmup, 0)
        computed = cache.computed
        samples, size = _timed(client, path, 0, args.repeat)
        out[name] = {"path": path, "ms": summary_ms(samples), "bytes": size}
        if cache.computed > computed:  # the cache expired while the page was timed
            out[name]["reports_computed"] = cache.computed - computed
        say(f"{name:24} {path:38} {out[name]['ms']} {size} bytes")
    for name, path in paths.items():
        out[name]["sql"] = _statements(runtime.engine, lambda p=path: _get(client, p))
    profiles = {
        name: _profile(lambda p=page["path"]: _get(client, p), args.profile_lines, name)
        for name, page in out.items()
        if page["ms"]["p95"] > GOAL_P95_MS
    }
    healthz, _ = _timed(client, "/healthz", args.warmup, args.repeat)
    return {"client_overhead_ms": summary_ms(healthz), "report_uncached": cold,
            "report_stale": stale,
            "pages": out, "profiles": profiles}  # fmt: skip


def _get(client: FlaskClient, path: str) -> int:
    """GET ``path``, read the whole body; its size. Anything but a 200 stops the bench."""
    response = client.get(path)
    body = response.get_data()
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {body[:500]!r}")
    return len(body)


def _timed(client: FlaskClient, path: str, warmup: int, repeat: int) -> tuple[list[float], int]:
    for _ in range(warmup):
        _get(client, path)
    samples, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = _get(client, path)
        samples.append(time.perf_counter() - t0)
    return samples, size


def _cold(runtime: Any, client: FlaskClient, path: str, times: int) -> dict[str, Any]:
    """``times`` requests, each after emptying the report cache: the whole report computed."""
    samples = []
    for _ in range(times):
        runtime.reports = ReportCache(runtime.settings.report_cache_s)
        t0 = time.perf_counter()
        _get(client, path)
        samples.append(time.perf_counter() - t0)
    return {"path": path, "first_ms": round(samples[0] * 1000, 1), "ms": summary_ms(samples)}


def _stale(runtime: Any, client: FlaskClient, path: str, times: int) -> dict[str, Any]:
    """``times`` requests, each finding its report older than the cache's time to live (but
    young enough to serve): answered from it while a background thread computes the next."""
    samples = []
    for _ in range(times):
        cache = runtime.reports = ReportCache(runtime.settings.report_cache_s)
        _get(client, path)  # fills the cache
        age = timedelta(seconds=cache.ttl_s * 2)
        cache._entries = {k: replace(r, end=r.end - age) for k, r in cache._entries.items()}
        t0 = time.perf_counter()
        _get(client, path)
        samples.append(time.perf_counter() - t0)
        cache.settle()  # the refresh ends before the next sample
    return {"path": path, "ms": summary_ms(samples)}


@contextmanager
def _timing_statements(engine: Engine) -> Iterator[list[tuple[float, str]]]:
    """(seconds, SQL) of each statement sent meanwhile, rows fetched included (psycopg)."""
    spans: list[tuple[float, str]] = []

    def before(conn: Any, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        spans.append((time.perf_counter() - conn.info.pop("bench_t0"), statement))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield spans
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def _statements(engine: Engine, call: Callable[[], Any]) -> dict[str, Any]:
    """How many statements one request sends, their time, and the slowest of them."""
    with _timing_statements(engine) as spans:
        t0 = time.perf_counter()
        call()
        total = time.perf_counter() - t0
    slowest = max(spans, default=(0.0, ""))
    return {
        "statements": len(spans), "db_ms": round(sum(s for s, _ in spans) * 1000, 1),
        "request_ms": round(total * 1000, 1), "slowest_ms": round(slowest[0] * 1000, 1),
        "slowest": " ".join(slowest[1].split())[:200],
    }  # fmt: skip


def _profile(call: Callable[[], Any], lines: int, name: str) -> list[str]:
    """cProfile one request; the top functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(call)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(lines)
    say(f"--- profile of one {name} request ---\n{out.getvalue()}")
    stats = pstats.Stats(profiler).stats
    top = sorted(((v[3], v[2], v[1], f) for f, v in stats.items()), reverse=True)[:lines]
    return [
        f"{cum * 1000:8.1f} ms cum {tot * 1000:7.1f} ms self {n:>7} calls "
        f"{Path(f[0]).name}:{f[1]}({f[2]})"
        for cum, tot, n, f in top
    ]


def parser() -> argparse.ArgumentParser:
    """The bench's options; ``parser().parse_args([])`` gives the defaults."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30, help="days of synthetic rollups")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first")
    parser.add_argument("--cold", type=int, default=3, help="uncached report requests")
    parser.add_argument("--profile-lines", type=int, default=25)
    return parser


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
