"""docs/performance.md from the saved sections, each with when, where and on what it ran."""

from __future__ import annotations

import json
from typing import Any

from bench import goals

HEADER = """# Performance

Written by `make bench` (`bench/run_all.py`), which reruns every section below; `--only NAME`
reruns some and keeps the others as they were, each with its own date, revision and versions
(the table of sections). Nothing here is carried from an earlier run under a later date.
Everything (PostgreSQL, Redis, nginx, workers, beat, the bench) shares the machine's cores.
"""

NOTES = """
## How the figures are made

- **throughput**: N http rules, each with its own URL, spread over several ports of one
  Debian nginx, all due at once; one `verify_all_rules` claims them and sends
  `verify_batch` chunks of 500; one worker process (prefork 2) on `scheduler,checks`. Timed
  from the dispatch until every verification, its rollups and its rule's state are
  committed. The bare rate is `rulewatch.ping` tasks (no-op, results on) through the same
  broker and worker.
- **throughput_baseline**: `bench/run_all.py --baseline REV` checks REV out in a temporary
  git worktree and runs the same `bench/throughput.py` with `PYTHONPATH` on that tree's
  `src` and on this one's, alternately (baseline first), five rounds; the medians and the
  best runs are compared (another process on the machine can only slow a run down). The
  throughput section is then the current run with the median rate.
- **scale**: the production split: Redis, a `scheduler,checks` worker, a dedicated
  `interactive` worker (prefork 1) and beat ticking every second. The rules (each its own
  URL on several nginx ports) are spread over their interval by `first_due`; lateness is
  `started_at - scheduled_for` of every scheduled verification, from the database. Worker
  CPU is the share of one core used by each role's processes over the run, from /proc.
  Verify-now: every 2 s a `verify` task on the interactive queue at urgent priority, timed
  until its result is in the result backend.
- **steady_state**: issue #13. The README's production split with nothing tuned:
  `rulewatch web`, `rulewatch worker` and `rulewatch beat` with no options and no
  `RULEWATCH_TICK_S`, `_CHUNK_SIZE` or `_CLAIM_BATCH`, on PostgreSQL and Redis. N http
  rules at one interval, each its own URL on four nginx ports, spread over the interval by
  `first_due`. After a warm-up, a window is measured from the verifications table: the
  scheduled runs that started in it (a run is only there once recorded), their lateness
  (`started_at - scheduled_for`), how far the most overdue rule is behind at the end, and
  CPU per verification of each process group (/proc). The burst figure (throughput) stays
  as a burst. Then beat stops and bare `rulewatch.ping` tasks are timed on the same broker
  and worker.
- **import**: `rulewatch rules import` as a process (start to exit) of a YAML file of N
  http rules into an empty PostgreSQL database, again unchanged, and again with every rule
  changed (interval and a tag).
- **bulk_writes**: the client side of recording one batch on PostgreSQL (500 verification
  rows, their hourly rollups, the rules' advance) in process: CPU (`process_time`) per row
  and wall time per batch, as `db.insert_many` / `upsert` / `update_many` send them (one
  statement each, the rows in one JSON parameter) and as the executemany they replaced,
  alternating, medians of 10 rounds.
- **verify_now_up**: the stack `rulewatch up` starts in an empty home (SQLite, the embedded
  filesystem broker, one worker consuming every queue, beat, the web server), no other
  settings. Rules spread over their interval keep the worker busy; every 2 s a client posts
  `/api/v1/rules/1/verify` and polls `/api/v1/tasks/<id>` every 20 ms until it succeeds.
- **slow_targets**: issue #12 item 2. 1,000 http rules at 10 s against nginx (each its own
  URL) and 20 against a port that accepts connections and never answers (`timeout_s` 60),
  spread over their interval by `first_due`; one `rulewatch worker` of the default
  concurrency (4) consuming every queue, scheduler included, and beat ticking every second,
  on Redis and PostgreSQL, 150 s after a 15 s warm-up. Lateness is `started_at -
  scheduled_for` of the fast rules' runs due before the last 5 s; a missed due time is a
  point of a fast rule's grid in that window with no verification; tick gaps are between the
  `verify_all_rules` tasks the worker received (its log).
- **report**: `get_stable_rates_html` work (one grouped statement over hourly and daily
  rollups, then Jinja2) at 10,000 rules with 30 days of synthetic rollups, "now" fixed at
  12:30 UTC, the costliest time of day for the bucket plan.
- **api**: `rulewatch web` (gunicorn, 2 workers x 4 threads), 4 concurrent clients. The
  stability endpoint shares one report per (window, tag) for `RULEWATCH_REPORT_CACHE_S`
  (30 s) and returns a page of 100 rules, so the cached figure is mostly answers from
  memory. The uncached figure serves the same endpoint with `RULEWATCH_REPORT_CACHE_S=0`,
  one request at a time (concurrent readers of a report being computed share it).
- **storage**: a real run, then bytes from the database (`pg_total_relation_size`: heap,
  indexes, TOAST) divided by the rules. Raw verifications go through the real probe and
  write path (a worker) until each rule has the default `RULEWATCH_KEEP_PER_RULE` plus a
  few hundred more, with the retention task (`rulewatch.prune`) every 60 runs (hourly at a
  60 s interval) and VACUUM as autovacuum would, so freed space is reused. Rollups go
  through the verification path's upsert (`add_samples`), the days before today in time
  order with retention and VACUUM every simulated week, until the hourly (90 days) and
  daily (730 days) periods are full. A rule that fails at every run also keeps each
  failure for `RULEWATCH_RETENTION_DAYS`; its figure is derived from this run's bytes per
  verification row (`always_failing_rule_bytes_derived`).
- **metrics**: `GET /metrics` through the Flask test client at 10,000 rules with 30 days of
  daily rollups. Each scrape reads the sums of yesterday's and today's daily rollups through
  the bucket index plus rule, incident and outbox counts; the sums of older days are kept in
  the process and re-read every 10 minutes (`scrape_rereading_all_days_ms`), and a process
  answers scrapes from a collection up to 5 s old (`scrape_cached_ms`).
- **ui**: every page of the web UI through the Flask test client (in process) at 10,000
  rules with the report bench's rollups, recent verifications, incidents, notifications,
  maintenance windows and users; an admin's bearer token signs in. Report pages share one
  report per (window, tag) for `RULEWATCH_REPORT_CACHE_S`; once it is older, readers still
  get it at once while one background thread computes the next (`report_stale`), for up to
  ten times that age. Only the first request for a window and tag in a web process (or
  after a long quiet spell) computes the report while it waits (`report_uncached`).
- **alert_storm**: N http rules alerting one recipient, spread over their interval, on the
  README's production split (Redis, PostgreSQL, a `checks` worker of 2, an `alerts` worker,
  `rulewatch scheduler`, beat ticking every second) with the default
  `RULEWATCH_ALERT_GROUP_WAIT_S` (10 s). After every rule has passed, the HTTP target (aiohttp
  in the bench process) answers 500 to all of them; an aiosmtpd server in the bench process
  notes when each message arrives, and each rule's figure is the time from the outage to
  the first email whose text links to it. A tick's alerts go when its last batch has
  reported (the tick's alert latch, `docs/alerts.md`), one email per recipient per tick.
"""


def render(sections: dict[str, Any]) -> str:
    """The whole document."""
    lines = [HEADER]
    lines += _goal_table(sections)
    lines += _section_table(sections)
    lines += [NOTES.strip(), ""]
    if "storage" in sections:
        lines += _storage_table(sections["storage"]["result"])
    if "throughput_baseline" in sections:
        lines += _baseline_table(sections["throughput_baseline"]["result"])
    if "ui" in sections:
        lines += _ui_table(sections["ui"]["result"])
    lines += ["## Raw results", ""]
    for name, section in sections.items():
        lines += [f"### {name}", "", "```json", json.dumps(section, indent=2), "```", ""]
    return "\n".join(lines)


def when(section: dict[str, Any]) -> str:
    """A section's date, or why it has none."""
    measured = section.get("measured")
    return measured["date"] if measured else "unknown (saved before runs were dated)"


def _head(title: str, *columns: str) -> list[str]:
    """A section title and a table's header rows."""
    return [title, "", *_columns(*columns)]


def _columns(*columns: str) -> list[str]:
    """A table's header rows."""
    return [f"| {' | '.join(columns)} |", "|" + " --- |" * len(columns)]


def _goal_table(sections: dict[str, Any]) -> list[str]:
    lines = _head("## Goals (issues #6, #11, #12 and #13)", "goal", "target", "measured", "met",
                  "section, measured")  # fmt: skip
    for goal, target, measured, met, name in goals.rows(sections):
        lines.append(f"| {goal} | {target} | {measured} | {'yes' if met else 'no'} "
                     f"| {name}, {when(sections[name])} |")  # fmt: skip
    return [*lines, ""]


def _section_table(sections: dict[str, Any]) -> list[str]:
    lines = _head("## When, where and on what each section ran", "section", "measured",
                  "revision", "took", "machine", "versions")  # fmt: skip
    for name, section in sections.items():
        m = section.get("measured")
        if not m:
            lines.append(f"| {name} | {when(section)} | | | | |")
            continue
        versions = (f"Python {m['python']}, PostgreSQL {m['postgresql']}, Redis {m['redis']}, "
                    + ", ".join(f"{k} {v}" for k, v in m["packages"].items()))  # fmt: skip
        lines.append(f"| {name} | {m['date']} | {m['revision']} | {m['seconds']:.0f} s "
                     f"| {m['machine']} | {versions} |")  # fmt: skip
    # the baseline comparison and the throughput section share one run (and one "measured")
    runs = {(m["date"], m["seconds"]) for s in sections.values() if (m := s["measured"])}
    total = sum(seconds for _, seconds in runs)
    lines += ["", f"The sections took {total / 60:.0f} minutes of bench time in all (set-up "
              "included; waiting for the machine between sections not)."]  # fmt: skip
    return [*lines, ""]


def _storage_table(s: dict[str, Any]) -> list[str]:
    lines = _head(f"## Storage per rule at steady state ({s['rules']} rules, measured)",
                  "table", "rows per rule", "bytes per rule")  # fmt: skip
    for name, t in s["tables"].items():
        lines.append(f"| {name} | {t['rows_per_rule']:,} | {t['bytes_per_rule']:,} |")
    lines += [
        f"| **total** | | **{s['bytes_per_rule']:,}** |",
        "",
        f"{s['verifications_recorded']:,} verifications recorded by the worker, "
        f"{s['simulated_days']} days of rollups; {s['bytes_per_verification_row']} bytes per "
        f"kept verification. A rule failing at every 60 s run would keep "
        f"{s['retention_days'] * 1440:,} failures: about "
        f"{s['always_failing_rule_bytes_derived'] / 1e6:.1f} MB (derived from the bytes per "
        "verification above, not measured).",
        "",
    ]
    return lines


def _baseline_table(b: dict[str, Any]) -> list[str]:
    rates = b["verifications_per_s"]
    lines = [
        f"## Throughput against {b['baseline_revision']} (same run)",
        "",
        f"`bench/throughput.py` at {b['baseline_revision']} and at {b['current_revision']}, "
        f"{b['order']}, {b['rounds']} rounds.",
        "",
        *_columns("revision", "verifications/s, each run", "median", "best"),
        f"| {b['baseline_revision']} (baseline) | {', '.join(map(str, rates['baseline']))} "
        f"| {b['median_verifications_per_s']['baseline']} "
        f"| {b['best_verifications_per_s']['baseline']} |",
        f"| {b['current_revision']} | {', '.join(map(str, rates['current']))} "
        f"| {b['median_verifications_per_s']['current']} "
        f"| {b['best_verifications_per_s']['current']} |",
        "",
        f"Current over baseline: {b['current_over_baseline']}x by medians, "
        f"{b['best_current_over_best_baseline']}x by best runs (goal: within 10%, >= 0.90x).",
        "",
    ]
    return lines


def _ui_table(ui: dict[str, Any]) -> list[str]:
    """The web UI's pages, one row each: server time p50/p95/max, SQL statements, size."""
    lines = [
        f"## Web UI pages at {ui['rules']:,} rules",
        "",
        f"Server time through the Flask test client, {ui['warmup']} warm-ups then "
        f"{ui['repeat']} requests a page, the report cache warm (the test client itself: "
        f"/healthz at {ui['client_overhead_ms']['p50']} ms p50). Goal: p95 <= "
        f"{ui['goal_p95_ms']} ms.",
        "",
        "| page | path | p50 ms | p95 ms | max ms | SQL statements | kB | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, page in ui["pages"].items():
        ms = page["ms"]
        lines.append(
            f"| {name} | `{page['path']}` | {ms['p50']} | {ms['p95']} | {ms['max']} "
            f"| {page['sql']['statements']} | {page['bytes'] / 1000:.0f} "
            f"| {'no' if name in ui['over_goal'] else 'yes'} |"
        )
    lines += [
        "",
        f"Uncached, the report computed for the request ({ui['cold']} requests, the report "
        "cache emptied before each; the first is also the process's first report page):",
        "",
    ]
    for cold in ui["report_uncached"].values():
        ms = cold["ms"]
        lines.append(f"- `{cold['path']}`: first {cold['first_ms']} ms, p50 {ms['p50']} ms, "
                     f"max {ms['max']} ms")  # fmt: skip
    lines += ["", "Stale (older than the cache's time to live: served at once, refreshed in "
              "the background):", ""]  # fmt: skip
    for stale in ui["report_stale"].values():
        ms = stale["ms"]
        lines.append(f"- `{stale['path']}`: p50 {ms['p50']} ms, max {ms['max']} ms")
    return [*lines, ""]
