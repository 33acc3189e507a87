"""The goals of issues #6, #11, #12 and #13 as table rows, each from the section that measured
it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, str, str, bool, str]  # goal, target, measured, met, section


def rows(sections: dict[str, Any]) -> list[Row]:
    """Every goal whose section is in ``sections`` ({name: {"measured", "result"}})."""
    out: list[Row] = []
    for name, make in GOALS.items():
        if name in sections:
            out += [(*row, name) for row in make(sections[name]["result"])]
    return out


def _throughput(t: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    # results saved before the URLs were spread hit one URL on one port
    where = f"{t.get('distinct_urls', 1):,} URLs on {t.get('nginx_ports', 1)} nginx ports"
    return [
        (f"verifications/s end to end ({t['rules']:,} rules, {where})", ">= 3000",
         f"{t['verifications_per_s']}", t["verifications_per_s"] >= 3000),
        ("ratio to bare Celery no-op rate", ">= 4x", f"{t['ratio']}x", t["ratio"] >= 4),
    ]  # fmt: skip


def _baseline(b: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    med, best = b["median_verifications_per_s"], b["best_verifications_per_s"]
    what = (f"throughput against {b['baseline_revision']} (same run, {b['rounds']} alternating "
            "runs each: medians; best runs)")  # fmt: skip
    ratios = b["current_over_baseline"], b["best_current_over_best_baseline"]
    measured = (f"{ratios[0]}x ({med['current']}/s vs {med['baseline']}/s); "
                f"{ratios[1]}x ({best['current']}/s vs {best['baseline']}/s)")  # fmt: skip
    return [(what, ">= 0.90x both", measured, min(ratios) >= 0.9)]


def _scale(s: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    now = s["verify_now_latency_s"]
    return [
        (f"{s['rules']:,} rules at {s['interval_s']} s: p99 lateness", "<= 5 s",
         f"{s['lateness_p99_s']} s", s["lateness_p99_s"] <= 5),
        ("verify now p50 under that load, production split (Redis, a dedicated interactive "
         "worker)", "<= 300 ms", f"{now.get('p50', 0) * 1000:.0f} ms",
         now.get("p50", 99) <= 0.3),
    ]  # fmt: skip


def _steady_state(s: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """#13 item 1: the production defaults hold 3,000 verifications/s, on time."""
    what = (f"{s['rules']:,} rules at {s['interval_s']} s (demand {s['demand_per_s']:,.0f}/s), "
            "`rulewatch web`, `worker`, `beat` with their defaults, steady state")  # fmt: skip
    rate, p99 = s["verifications_per_s"], s["lateness_p99_s"]
    cpu = s["cpu_ms_per_verification"]["worker"]
    return [
        (f"{what}: verifications/s", ">= 3000", f"{rate:,}", rate >= 3000),
        (f"{what}: lateness p99", "<= 5 s", f"{p99} s", p99 <= 5),
        (f"{what}: ratio to bare Celery no-op rate", ">= 5x", f"{s['ratio_to_noop']}x",
         s["ratio_to_noop"] >= 5),
        (f"{what}: worker CPU per verification", "<= 0.25 ms", f"{cpu} ms", cpu <= 0.25),
    ]  # fmt: skip


def _import(i: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """#13 item 3: `rulewatch rules import` at database speed."""
    worst = max(i["new_s"], i["unchanged_s"], i["changed_s"])
    what = (
        f"`rulewatch rules import` of {i['rules']:,} rules, PostgreSQL, slowest of new / "
        f"unchanged / all changed ({i['new_s']} / {i['unchanged_s']} / {i['changed_s']} s)"
    )
    return [(what, "<= 10 s", f"{worst} s", worst <= 10)]


def _verify_now_up(v: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    ms = v["verify_now_ms"]
    what = (f"verify now p50 under load, `rulewatch up` stack (embedded broker, one worker, "
            f"{v['rules']:,} rules at {v['interval_s']} s; API request to result)")  # fmt: skip
    return [(what, "<= 300 ms", f"{ms['p50']:.0f} ms", ms["p50"] <= 300)]


def _slow_targets(s: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    late, ticks = s["fast_lateness_s"], s["tick_gap_s"]
    beside = (f"{s['fast_rules']:,} rules at {s['interval_s']} s beside {s['slow_rules']} whose "
              f"target never answers (timeout_s {s['slow_timeout_s']}), one worker")  # fmt: skip
    return [
        (f"{beside}: fast rules' lateness p99", "<= 2 s", f"{late['p99']} s", late["p99"] <= 2),
        (f"{beside}: fast rules' due times never verified", "0",
         f"{s['fast_missed_due_times']}", s["fast_missed_due_times"] == 0),
        (f"{beside}: largest gap between verify_all_rules ticks (tick 1 s)", "<= 2 s",
         f"{ticks['max']} s", ticks["max"] <= 2),
    ]  # fmt: skip


def _report(r: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    p95 = r["full_ms"]["p95"]
    what = f"{r['window']} report at {r['rules']:,} rules (compute + render, p95)"
    return [(what, "<= 1 s", f"{p95 / 1000:.3f} s", p95 <= 1000)]


def _api(a: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    out = [
        ("GET /api/v1/stability?window=30d p95, cached (the process's report cache, "
         "4 clients)", "<= 100 ms", f"{a['stability']['p95_ms']} ms",
         a["stability"]["p95_ms"] <= 100),
    ]  # fmt: skip
    if "stability_uncached" in a:
        u = a["stability_uncached"]
        out.append(("GET /api/v1/stability?window=30d p95, uncached (report computed for each "
                    "request, one at a time)", "<= 100 ms", f"{u['p95_ms']} ms",
                    u["p95_ms"] <= 100))  # fmt: skip
    out.append(("GET /api/v1/rules first page p95 (4 clients)", "<= 100 ms",
                f"{a['rules']['p95_ms']} ms", a["rules"]["p95_ms"] <= 100))  # fmt: skip
    return out


def _storage(s: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    what = (
        f"storage per rule at steady state (measured: {s['keep_per_rule']} raw kept, "
        f"{s['hourly_retention_days']} d hourly, {s['daily_retention_days']} d daily)"
    )
    per_rule = s["bytes_per_rule"]
    return [(what, "<= 1 MB", f"{per_rule / 1e6:.2f} MB", per_rule <= 1e6)]


def _ui(ui: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """The web UI's goal: no page slower than 200 ms server time at 10,000 rules."""
    goal = ui["goal_p95_ms"]
    name, page = max(ui["pages"].items(), key=lambda item: item[1]["ms"]["p95"])
    out = [
        (f"every UI page at {ui['rules']:,} rules, server time p95, report cache warm "
         f"(slowest: {name})", f"<= {goal} ms", f"{page['ms']['p95']} ms", not ui["over_goal"]),
    ]  # fmt: skip
    stale = max(ui["report_stale"].values(), key=lambda c: c["ms"]["p95"])
    what = f"report page past the cache's time to live (stale), p95 ({stale['path']})"
    out.append((what, f"<= {goal} ms", f"{stale['ms']['p95']} ms", stale["ms"]["p95"] <= goal))
    cold = max(ui["report_uncached"].values(), key=lambda c: c["ms"]["p95"])
    what = f"report page uncached (a process's first for its window), p95 ({cold['path']})"
    out.append((what, f"<= {goal} ms", f"{cold['ms']['p95']} ms", cold["ms"]["p95"] <= goal))
    return out


def _alert_storm(a: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """#12 item 8: every rule of a storm named in an email soon after its last needed fail."""
    late = a["named_after_outage_s"]
    what = (f"{a['rules']:,} rules failing at once (threshold {a['failure_threshold']}, "
            f"interval {a['interval_s']} s): every rule named in an email, p99 after the "
            f"outage ({a['rules_named']:,} named, {a['emails']} emails)")  # fmt: skip
    met = a["rules_named"] == a["rules"] and late.get("p99", 1e9) <= a["goal_s"]
    return [(what, f"<= {a['goal_s']} s", f"{late.get('p99')} s", met)]


GOALS: dict[str, Callable[[dict[str, Any]], list[tuple[str, str, str, bool]]]] = {
    "throughput": _throughput,
    "throughput_baseline": _baseline,
    "scale": _scale,
    "steady_state": _steady_state,
    "import": _import,
    "verify_now_up": _verify_now_up,
    "slow_targets": _slow_targets,
    "report": _report,
    "api": _api,
    "storage": _storage,
    "ui": _ui,
    "alert_storm": _alert_storm,
}
