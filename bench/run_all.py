"""`make bench`: every benchmark in one run, figures printed and written to docs/performance.md.

Usage: python bench/run_all.py [--quick] [--only NAME ...] [--baseline REV] [--doc]
  --quick     small sizes, for trying the harness; writes nothing
  --only      rerun these sections; the others stay as saved, with their own dates
  --baseline  run the throughput bench alternately at REV and here (bench/baseline.py)
  --doc       rewrite docs/performance.md from docs/performance.json, measuring nothing
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import (  # noqa: E402
    alert_storm,
    api_bench,
    baseline,
    bulk_writes,
    goals,
    import_bench,
    metrics_bench,
    performance_doc,
    report_bench,
    scale,
    slow_targets_bench,
    steady_state,
    storage_bench,
    throughput,
    ui_bench,
    verify_now_bench,
)
from bench.database import PG_ADMIN  # noqa: E402

SAVED = ROOT / "docs/performance.json"
BENCHES: dict[
    str, tuple[Callable[[], argparse.ArgumentParser], Callable[[Any], dict[str, Any]]]
] = {
    "throughput": (throughput.parser, throughput.run),
    "scale": (scale.parser, scale.run),
    "steady_state": (steady_state.parser, steady_state.run),
    "import": (import_bench.parser, import_bench.run),
    "bulk_writes": (bulk_writes.parser, bulk_writes.run),
    "verify_now_up": (verify_now_bench.parser, verify_now_bench.run),
    "slow_targets": (slow_targets_bench.parser, slow_targets_bench.run),
    "storage": (storage_bench.parser, storage_bench.run),
    "report": (report_bench.parser, report_bench.run),
    "api": (api_bench.parser, api_bench.run),
    "metrics": (metrics_bench.parser, metrics_bench.run),
    "ui": (ui_bench.parser, ui_bench.run),
    "alert_storm": (alert_storm.parser, alert_storm.run),
}
QUICK = {
    "throughput": ["--rules", "1000", "--noop", "500"],
    "scale": ["--rules", "3000", "--interval", "10", "--duration", "30"],
    "steady_state": ["--rules", "3000", "--warmup", "15", "--duration", "20", "--noop", "500"],
    "import": ["--rules", "2000"],
    "bulk_writes": ["--rounds", "3"],
    "verify_now_up": ["--rules", "100", "--duration", "10"],
    "slow_targets": ["--fast", "200", "--slow", "5", "--timeout", "15", "--duration", "30"],
    "storage": ["--rules", "10", "--extra-rounds", "60", "--days", "40"],
    "report": ["--rules", "500", "--repeat", "3"],
    "api": ["--rules", "500", "--uncached", "5"],
    "metrics": ["--rules", "500", "--repeat", "5"],
    "ui": ["--rules", "500", "--repeat", "5", "--cold", "2"],
    "alert_storm": ["--rules", "200"],
}
BASELINE_ROUNDS = 5


def measured(seconds: float, options: list[str]) -> dict[str, Any]:
    """When, at which revision and on what a section was just measured."""
    engine = create_engine(PG_ADMIN)
    with engine.connect() as conn:
        pg = conn.scalar(text("SHOW server_version"))
    engine.dispose()
    names = ("celery", "kombu", "sqlalchemy", "aiohttp", "redis", "psycopg", "flask")
    return {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "revision": baseline.describe_checkout(),
        "seconds": round(seconds, 1),
        "options": options,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "postgresql": pg,
        "redis": redis.Redis.from_url(throughput.BROKER).info()["redis_version"],
        "packages": {name: version(name) for name in names},
    }


def load_saved() -> dict[str, Any]:
    """The saved sections; results saved before sections were dated get no date."""
    if not SAVED.exists():
        return {}
    saved: dict[str, Any] = json.loads(SAVED.read_text())
    return {
        name: s if set(s) == {"measured", "result"} else {"measured": None, "result": s}
        for name, s in saved.items()
    }


def run_one(name: str, options: list[str]) -> dict[str, Any]:
    """Run one bench; its result and when and on what it ran."""
    make_parser, run = BENCHES[name]
    t0 = time.perf_counter()
    result = run(make_parser().parse_args(options))
    return {"measured": measured(time.perf_counter() - t0, options), "result": result}


def run_baseline(revision: str, options: list[str]) -> dict[str, dict[str, Any]]:
    """Throughput alternately at ``revision`` and here; the comparison and the median run."""
    t0 = time.perf_counter()
    comparison = baseline.compare(revision, BASELINE_ROUNDS, options)
    took = measured(time.perf_counter() - t0, options)
    runs = sorted(comparison["runs"]["current"], key=lambda r: r["verifications_per_s"])
    median_run = runs[len(runs) // 2]
    return {
        "throughput_baseline": {"measured": took, "result": comparison},
        "throughput": {"measured": took, "result": median_run},
    }


def main() -> None:
    options = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    options.add_argument("--quick", action="store_true")
    options.add_argument("--only", nargs="+", choices=list(BENCHES), metavar="NAME")
    options.add_argument("--baseline", metavar="REV", help="compare throughput with REV")
    options.add_argument("--doc", action="store_true")
    args = options.parse_args()
    if args.doc:
        write(load_saved())
        return
    sections = load_saved() if args.only else {}
    t0 = time.perf_counter()
    for name in args.only or list(BENCHES):
        print(f"== {name}", flush=True)
        bench_options = QUICK[name] if args.quick else []
        if name == "throughput" and args.baseline:
            sections.update(run_baseline(args.baseline, bench_options))
        else:
            sections[name] = run_one(name, bench_options)
        print(json.dumps(sections[name]["result"], indent=2), flush=True)
        if not args.quick:  # saved as each finishes, so a later failure loses nothing
            SAVED.write_text(json.dumps(sections, indent=2) + "\n")
    print(f"== all took {time.perf_counter() - t0:.0f} s", flush=True)
    for goal, target, figure, met, name in goals.rows(sections):
        print(f"{'MET ' if met else 'MISS'} {goal}: {figure} (goal {target}; {name})")
    if not args.quick:
        write(sections)


def write(sections: dict[str, Any]) -> None:
    """docs/performance.md from ``sections``."""
    (ROOT / "docs/performance.md").write_text(performance_doc.render(sections))


if __name__ == "__main__":
    main()
