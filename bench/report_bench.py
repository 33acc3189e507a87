"""The 30-day stability report for many rules over synthetic rollups, on PostgreSQL.

Usage: python bench/report_bench.py [--rules N] [--repeat R] [--days D] [--window W]
Creates N rules and D days of hourly and daily rollups in a fresh database (bench/common.py),
then times R runs (after one warm-up) of ``stability_report`` alone and of the report plus
``render_stability_html`` (the work of the ``get_stable_rates_html`` task). Runs EXPLAIN
ANALYZE on the queries the service sends (captured from the engine, so they are exactly the
service's) and profiles one report. Prints progress and plans on stderr, a JSON dict last.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    BenchDatabase,
    bench_database,
    hourly_hours_read,
    report_now,
    rollup_totals,
    say,
    summary_ms,
)
from rulewatch.db import make_engine, make_session_factory  # noqa: E402
from rulewatch.services.reports import render_stability_html  # noqa: E402
from rulewatch.services.stability import StabilityReport, stability_report  # noqa: E402

GOAL_MS = 1000
QUERY_NAMES = {"rollups_hourly": "hourly", "rollups_daily": "daily", "FROM rules": "rules"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the database, time the report, explain its queries; the database is dropped."""
    now = report_now(None if args.at_hour < 0 else args.at_hour)
    with bench_database(args.rules, args.days, now) as db:
        engine = make_engine(db.url)
        try:
            return measure(engine, db, args)
        finally:
            engine.dispose()


def measure(engine: Engine, db: BenchDatabase, args: argparse.Namespace) -> dict[str, Any]:
    factory = make_session_factory(engine)

    def report() -> StabilityReport:
        with factory() as session:
            return stability_report(session, args.window, db.now)

    def report_html() -> tuple[float, int]:
        with factory() as session:
            rep = stability_report(session, args.window, db.now)
        t0 = time.perf_counter()
        html = render_stability_html(rep)
        return time.perf_counter() - t0, len(html.encode())

    first = report()  # warm-up: pool, caches, statement compilation
    report_html()
    check = _check(engine, first)
    say(f"check: {check}")

    report_s = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        report()
        report_s.append(time.perf_counter() - t0)
    say(f"stability_report: {summary_ms(report_s)}")

    full_s, render_s, html_bytes = [], [], 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        render, html_bytes = report_html()
        full_s.append(time.perf_counter() - t0)
        render_s.append(render)
    say(f"report + render_stability_html: {summary_ms(full_s)}")

    statements = _captured_statements(engine, report)
    explain = {name: _explain(engine, sql, params) for name, (sql, params) in statements.items()}
    profile = _profile(report, args.profile_lines)
    full = summary_ms(full_s)
    return {
        "bench": "report", "rules": db.rules, "days": db.days, "window": args.window,
        "report_now": db.now.isoformat(),
        "hourly_hours_read": hourly_hours_read(args.window, db.now),
        "hourly_rows": db.hourly_rows, "daily_rows": db.daily_rows, "setup_s": db.setup_s,
        "table_mb": db.table_mb, "repeat": args.repeat,
        "report_ms": summary_ms(report_s), "full_ms": full,
        "render_only_ms": summary_ms(render_s), "html_bytes": html_bytes,
        "explain": explain, "profile_top": profile, "check": check,
        "goal_ms": GOAL_MS, "meets_goal": full.get("p95", 1e9) <= GOAL_MS,
    }  # fmt: skip


def _check(engine: Engine, report: StabilityReport) -> dict[str, Any]:
    """The report must show every rule, and add up to the hourly rollups it stands on."""
    passed, failed, errors = rollup_totals(engine)
    c = report.overall.counts
    return {
        "rules_in_report": report.overall.rules_total,
        "rules_with_data": report.overall.rules_with_data,
        "rules_meeting_target": report.overall.rules_meeting_target,
        "overall_rate": report.overall.rate,
        "totals_match_rollups": (c.passed, c.failed, c.errors) == (passed, failed, errors),
    }


def _captured_statements(engine: Engine, call: Any) -> dict[str, tuple[str, Any]]:
    """The SQL (and parameters) that one call of ``call`` sends, named hourly/daily/rules."""
    seen: dict[str, tuple[str, Any]] = {}

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        for marker, name in QUERY_NAMES.items():
            if marker in statement and name not in seen:
                seen[name] = (statement, parameters)
                break

    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def _explain(engine: Engine, sql: str, params: Any) -> dict[str, Any]:
    """EXPLAIN ANALYZE one statement: the text plan to stderr, a summary of its nodes back."""
    with engine.connect() as conn:
        text_plan = [
            row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        ]
        (plan_json,) = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params
        ).one()
    say("\n" + " ".join(sql.split()) + "\n" + "\n".join(text_plan) + "\n")
    top = plan_json[0]
    nodes = list(_nodes(top["Plan"]))
    scans = [n for n in nodes if "Scan" in n["node"]]
    return {
        "execution_ms": round(top["Execution Time"], 1),
        "planning_ms": round(top["Planning Time"], 1),
        "uses_index": any("Index" in n["node"] for n in scans),
        "scans": scans,
        "summary": [line.strip() for line in text_plan if _is_summary(line)],
    }


def _nodes(plan: dict[str, Any]) -> Any:
    yield {
        "node": plan["Node Type"],
        **({"relation": plan["Relation Name"]} if "Relation Name" in plan else {}),
        **({"index": plan["Index Name"]} if "Index Name" in plan else {}),
        "rows": plan.get("Actual Rows"),
        "ms": round(plan.get("Actual Total Time", 0.0), 1),
        **({"filtered_out": plan["Rows Removed by Filter"]} if "Rows Removed by Filter" in plan
           else {}),
        **({"heap_fetches": plan["Heap Fetches"]} if "Heap Fetches" in plan else {}),
        "buffers_read": plan.get("Shared Read Blocks", 0),
        "buffers_hit": plan.get("Shared Hit Blocks", 0),
    }  # fmt: skip
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _is_summary(line: str) -> bool:
    words = ("Scan", "Aggregate", "Sort", "Execution Time", "Planning Time", "Workers")
    return any(w in line for w in words)


def _profile(call: Any, lines: int) -> list[str]:
    """cProfile one call; the top functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(call)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(lines)
    say(out.getvalue())
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    top = []
    for func, (_, ncalls, tottime, cumtime, _) in list(stats.stats.items()):
        top.append((cumtime, tottime, ncalls, func))
    top.sort(reverse=True)
    return [
        f"{cum * 1000:8.1f} ms cum {tot * 1000:7.1f} ms self {n:>7} calls "
        f"{Path(f[0]).name}:{f[1]}({f[2]})"
        for cum, tot, n, f in top[:lines]
    ]


def parser() -> argparse.ArgumentParser:
    """The bench's options; ``parser().parse_args([])`` gives the defaults."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10, help="timed runs after one warm-up")
    parser.add_argument("--days", type=int, default=30, help="days of synthetic rollups")
    parser.add_argument("--window", default="30d")
    parser.add_argument(
        "--at-hour", type=int, default=12,
        help="UTC hour of the report's now (12: about 25 hours read hourly); -1: real now",
    )  # fmt: skip
    parser.add_argument("--profile-lines", type=int, default=25)
    return parser


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
