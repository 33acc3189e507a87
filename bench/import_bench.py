"""Import: `rulewatch rules import` of N http rules (one distinct URL each) on PostgreSQL,
through the real CLI process, timed from its start to its exit: into an empty database,
again unchanged, and again with every rule changed (a new interval and tag).

Usage: python bench/import_bench.py [--rules 40000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import run_as_script  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule, RuleTag  # noqa: E402


def rules_yaml(count: int, interval: int, tag: str) -> str:
    """A YAML file of ``count`` http rules, as a user would write it."""
    rules = [
        {
            "name": f"shop page {i}",
            "kind": "http",
            "target": {"url": f"http://127.0.0.1:8080/shop/{i}", "timeout_s": 5},
            "conditions": ["[STATUS] == 200", "[RESPONSE_TIME] < 500"],
            "interval_s": interval,
            "tags": ["shop", tag],
        }
        for i in range(count)
    ]
    return yaml.safe_dump({"rules": rules}, sort_keys=False)


def timed_import(url: str, path: Path, home: Path) -> tuple[float, str]:
    """Seconds the CLI took to import ``path`` (process start to exit), and what it said."""
    env = {**os.environ, "RULEWATCH_DATABASE_URL": url, "RULEWATCH_HOME": str(home)}
    command = [sys.executable, "-m", "rulewatch", "rules", "import", str(path)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, done.stdout.strip()


def run(args: argparse.Namespace) -> dict[str, Any]:
    with scratch_database() as url, tempfile.TemporaryDirectory() as folder:
        upgrade(url)
        home = Path(folder)
        first, changed = home / "rules.yaml", home / "changed.yaml"
        first.write_text(rules_yaml(args.rules, 10, "v1"))
        changed.write_text(rules_yaml(args.rules, 20, "v2"))
        new_s, new_said = timed_import(url, first, home)
        same_s, same_said = timed_import(url, first, home)
        changed_s, changed_said = timed_import(url, changed, home)
        file_mb = first.stat().st_size / 2**20
        engine = create_engine(url)
        with engine.connect() as conn:
            stored = conn.scalar(select(func.count()).select_from(Rule))
            tagged = conn.scalar(select(func.count()).where(RuleTag.tag == "v2"))
        engine.dispose()
    if stored != args.rules or tagged != args.rules:
        raise RuntimeError(f"expected {args.rules} rules tagged v2, found {stored}, {tagged}")
    return {
        "rules": args.rules,
        "file_mb": round(file_mb, 1),
        "new_s": round(new_s, 2),
        "unchanged_s": round(same_s, 2),
        "changed_s": round(changed_s, 2),
        "said": [new_said, same_said, changed_said],
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rules", type=int, default=40000)
    return p


if __name__ == "__main__":
    run_as_script(run, parser)
