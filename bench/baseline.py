"""The throughput bench against another git revision of rulewatch, in the same run.

``compare("e8b278c", rounds=3, bench_args)`` checks the revision out in a temporary git
worktree and runs bench/throughput.py (this checkout's bench) alternately with PYTHONPATH on
that worktree's ``src`` and on this checkout's ``src``, so both see the same machine, load
and time of day. Medians and best runs are both compared: on a shared machine another
process can only slow a run down, so the best run of each is the least disturbed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    """Run git in this checkout; its output, stripped."""
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """A temporary, detached git worktree of ``revision``, removed on the way out."""
    folder = Path(tempfile.mkdtemp(prefix="rulewatch-baseline-")) / "tree"
    git("worktree", "add", "--detach", str(folder), revision)
    try:
        yield folder
    finally:
        git("worktree", "remove", "--force", str(folder))


def run_throughput(src: Path, bench_args: Sequence[str]) -> dict[str, Any]:
    """One bench/throughput.py run with rulewatch imported from ``src``."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, str(ROOT / "bench/throughput.py"), *bench_args,
                   "--result", out.name]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(src)}
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        return result


def compare(revision: str, rounds: int, bench_args: Sequence[str]) -> dict[str, Any]:
    """Alternate baseline and current runs ``rounds`` times; medians, best runs, ratios."""
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    with checkout(revision) as tree:
        for _ in range(rounds):
            print(f"== throughput at {revision} (baseline)", file=sys.stderr, flush=True)
            runs["baseline"].append(run_throughput(tree / "src", bench_args))
            print("== throughput at this checkout", file=sys.stderr, flush=True)
            runs["current"].append(run_throughput(ROOT / "src", bench_args))
    rates = {k: [r["verifications_per_s"] for r in v] for k, v in runs.items()}
    medians = {k: statistics.median(v) for k, v in rates.items()}
    best = {k: max(v) for k, v in rates.items()}
    return {
        "baseline_revision": git("rev-parse", "--short", revision),
        "current_revision": describe_checkout(),
        "rounds": rounds,
        "order": "baseline then current, alternating",
        "verifications_per_s": rates,
        "median_verifications_per_s": medians,
        "best_verifications_per_s": best,
        "current_over_baseline": round(medians["current"] / medians["baseline"], 3),
        "best_current_over_best_baseline": round(best["current"] / best["baseline"], 3),
        "runs": runs,
    }


def describe_checkout() -> str:
    """This checkout's short commit, "+changes" when its code differs from it (the results
    the benches write into docs/ do not count)."""
    commit = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src", "bench")
    return commit + ("+changes" if changed else "")
