"""API latency at scale: GET /api/v1/stability?window=30d and the first page of /api/v1/rules.

Usage: python bench/api_bench.py [--rules N] [--repeat R] [--concurrency C] [--warmup W]
Creates N rules and 30 days of rollups in a fresh PostgreSQL database (bench/common.py),
checks both endpoints in process (Flask test client, with a breakdown of where the time
goes), then serves the app with ``python -m rulewatch web --workers 2`` (gunicorn; --gunicorn
tries other settings) and, for each endpoint, sends W warm-up requests and R timed ones from
an aiohttp client keeping C requests in flight, then (--sequential) some one at a time: the
service time without queueing. Last, the stability endpoint served with the report cache
off (RULEWATCH_REPORT_CACHE_S=0), --uncached requests one at a time: the cost of a report
computed for the request, which the cached figure hides. Prints progress on stderr and a
JSON dict last.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    BenchDatabase,
    bench_database,
    free_port,
    hourly_hours_read,
    say,
    summary_ms,
    wait_http,
)
from rulewatch import create_app  # noqa: E402
from rulewatch.config import load_settings  # noqa: E402
from rulewatch.db import transaction  # noqa: E402
from rulewatch.models import utcnow  # noqa: E402
from rulewatch.services.rules import list_rules, rule_to_dict  # noqa: E402
from rulewatch.services.stability import report_to_dict, stability_report  # noqa: E402
from rulewatch.services.tokens import create_token  # noqa: E402
from rulewatch.services.users import create_user, generate_password  # noqa: E402

GOAL_P95_MS = 100
ENDPOINTS = {"stability_30d": "/api/v1/stability?window=30d", "rules_page": "/api/v1/rules"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the database, measure both endpoints in process and over HTTP; drop it all."""
    home = Path(tempfile.mkdtemp(prefix="rulewatch-apibench-"))
    try:
        with bench_database(args.rules, args.days) as db:
            env = {**os.environ, "RULEWATCH_HOME": str(home), "RULEWATCH_DATABASE_URL": db.url,
                   "RULEWATCH_BROKER_URL": "memory://",
                   "RULEWATCH_RESULT_BACKEND": "cache+memory://"}  # fmt: skip
            auth = {"Authorization": f"Bearer {_viewer_token(env)}"}
            in_process = _in_process(env, db, args, auth)
            served = _served(env, home, args, auth, ENDPOINTS)
            uncached = _uncached(env, home, args, auth)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    endpoints = {name: {**served[name], "in_process": in_process[name]} for name in ENDPOINTS}
    short = {"stability": endpoints["stability_30d"], "rules": endpoints["rules_page"]}
    return {
        "bench": "api", "rule_count": db.rules, "days": db.days, "setup_s": db.setup_s,
        "hourly_hours_read": hourly_hours_read("30d", utcnow()),
        "server": f"gunicorn {args.gunicorn}" if args.gunicorn
        else f"rulewatch web --workers {args.workers} (gunicorn, 4 threads each)",
        "concurrency": args.concurrency, "warmup": args.warmup, "repeat": args.repeat,
        **{key: {"p50_ms": e["latency_ms"]["p50"], "p95_ms": e["latency_ms"]["p95"],
                 "max_ms": e["latency_ms"]["max"], "bytes": e["response_bytes"],
                 "requests_per_s": e["requests_per_s"]} for key, e in short.items()},
        "stability_uncached": uncached,
        "endpoints": endpoints, "cpu_s": served["cpu_s"], "goal_p95_ms": GOAL_P95_MS,
        "meets_goal": all(e["latency_ms"]["p95"] <= GOAL_P95_MS for e in endpoints.values()),
    }  # fmt: skip


def _viewer_token(env: dict[str, str]) -> str:
    """A bearer token of a viewer: the API answers only callers who sign in."""
    app = create_app(load_settings(env))
    with transaction(app.extensions["rulewatch"].factory) as session:
        user = create_user(session, "bench", "viewer", generate_password(), utcnow())
        text = create_token(session, user, "api bench", utcnow())[1]
    app.extensions["rulewatch"].engine.dispose()
    return text


def _in_process(
    env: dict[str, str], db: BenchDatabase, args: argparse.Namespace, auth: dict[str, str]
) -> Any:
    """Check both endpoints through the Flask test client and time their parts, no HTTP."""
    app = create_app(load_settings(env))
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = auth["Authorization"]
    factory = app.extensions["rulewatch"].factory
    out: dict[str, Any] = {}
    for name, path in ENDPOINTS.items():
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:500]}")
        body = response.get_json()
        total = body["overall"]["rules"] if name == "stability_30d" else body["total"]
        if total != db.rules:
            raise RuntimeError(f"{path} shows {total} rules, not {db.rules}")
        out[name] = {"request_ms": summary_ms(_times(lambda p=path: client.get(p), args.inproc))}

    def parts_stability() -> dict[str, float]:
        with factory() as session:
            t0 = time.perf_counter()
            report = stability_report(session, "30d", utcnow())
        t1 = time.perf_counter()
        data = report_to_dict(report)
        t2 = time.perf_counter()
        app.json.dumps(data)
        return {"service": t1 - t0, "to_dict": t2 - t1, "json": time.perf_counter() - t2}

    def parts_rules() -> dict[str, float]:
        with factory() as session:
            t0 = time.perf_counter()
            rules, _ = list_rules(session, None, 100, 0)
            t1 = time.perf_counter()
            data = [rule_to_dict(r) for r in rules]
        t2 = time.perf_counter()
        app.json.dumps(data)
        return {"service": t1 - t0, "to_dict": t2 - t1, "json": time.perf_counter() - t2}

    for name, parts in (("stability_30d", parts_stability), ("rules_page", parts_rules)):
        runs = [parts() for _ in range(args.inproc)]
        out[name]["parts_p50_ms"] = {k: summary_ms([r[k] for r in runs])["p50"] for k in runs[0]}
        _profile(lambda p=ENDPOINTS[name]: client.get(p), name)
    say(f"in process: {json.dumps(out)}")
    app.extensions["rulewatch"].engine.dispose()
    return out


def _times(call: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def _profile(call: Callable[[], Any], name: str) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(call)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(20)
    say(f"--- profile of one in-process {name} request ---\n{text.getvalue()}")


def _uncached(
    env: dict[str, str], home: Path, args: argparse.Namespace, auth: dict[str, str]
) -> dict[str, Any]:
    """The stability endpoint with the report cache off: every request computes the report.

    One request at a time, since concurrent readers of a report being computed share it.
    """
    env = {**env, "RULEWATCH_REPORT_CACHE_S": "0"}
    one = argparse.Namespace(**{**vars(args), "repeat": args.uncached, "warmup": 2,
                                "concurrency": 1, "sequential": 0})  # fmt: skip
    endpoint = {"stability_30d": ENDPOINTS["stability_30d"]}
    result = _served(env, home, one, auth, endpoint)["stability_30d"]
    ms = result["latency_ms"]
    return {"path": result["path"], "report_cache_s": 0, "concurrency": 1, "p50_ms": ms["p50"],
            "p95_ms": ms["p95"], "max_ms": ms["max"], "latency_ms": ms}  # fmt: skip


def _served(
    env: dict[str, str],
    home: Path,
    args: argparse.Namespace,
    auth: dict[str, str],
    endpoints: dict[str, str],
) -> dict[str, Any]:
    """Serve with gunicorn in a subprocess and load each endpoint over HTTP."""
    port = free_port()
    log_path = home / "web.log"
    with log_path.open("wb") as log:
        command = [sys.executable, "-m", "rulewatch", "web", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(args.workers)]  # fmt: skip
        if args.gunicorn:  # an experiment: the same app under other gunicorn settings
            command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                       *shlex.split(args.gunicorn), "rulewatch.wsgi:app"]  # fmt: skip
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            base = f"http://127.0.0.1:{port}"
            try:
                wait_http(base + "/healthz", alive=lambda: proc.poll() is None)
            except RuntimeError:
                say(log_path.read_text(errors="replace")[-3000:])
                raise
            return asyncio.run(_load_all(base, proc.pid, args, auth, endpoints))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


async def _load_all(
    base: str,
    server_pid: int,
    args: argparse.Namespace,
    auth: dict[str, str],
    endpoints: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu_s": {}}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    client = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=auth)
    async with client as session:
        for name, path in endpoints.items():
            await _load(session, base + path, args.warmup, args.concurrency)
            cpu0 = _cpu(server_pid)
            t0 = time.perf_counter()
            times, sizes = await _load(session, base + path, args.repeat, args.concurrency)
            wall = time.perf_counter() - t0
            cpu1 = _cpu(server_pid)
            out[name] = {
                "path": path,
                "latency_ms": summary_ms(times),
                "requests_per_s": round(args.repeat / wall, 1),
                "response_bytes": max(sizes),
            }
            if args.sequential:  # one request at a time: the service time, without queueing
                times, _ = await _load(session, base + path, args.sequential, 1)
                out[name]["sequential_latency_ms"] = summary_ms(times)
            out["cpu_s"][name] = {k: round(cpu1[k] - cpu0.get(k, 0.0), 2) for k in cpu1}
            out["cpu_s"][name]["wall"] = round(wall, 2)
            say(f"{path}: {out[name]} cpu {out['cpu_s'][name]}")
    return out


async def _load(
    session: aiohttp.ClientSession, url: str, n: int, concurrency: int
) -> tuple[list[float], list[int]]:
    """``n`` GETs of ``url`` with ``concurrency`` in flight; latencies (s) and body sizes."""
    times: list[float] = []
    sizes: list[int] = []
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}: {body[:300]!r}")
            times.append(time.perf_counter() - t0)
            sizes.append(len(body))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times, sizes


def _cpu(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the gunicorn master, of each of its workers, and of postgres."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"web": 0.0, "postgres": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if int(entry.name) == server_pid or int(fields[1]) == server_pid:
            out["web"] += cpu
            if int(fields[1]) == server_pid:
                out[f"worker {entry.name}"] = cpu
        elif comm.startswith("postgres"):
            out["postgres"] += cpu
    return out


def parser() -> argparse.ArgumentParser:
    """The bench's options; ``parser().parse_args([])`` gives the defaults."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument(
        "--sequential", type=int, default=50,
        help="then this many requests one at a time (0: none), to separate queueing",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="rulewatch web --workers")
    parser.add_argument(
        "--gunicorn", metavar="ARGS",
        help='serve with `gunicorn ARGS rulewatch.wsgi:app` instead, e.g. "-w 4 --threads 1"',
    )  # fmt: skip
    parser.add_argument("--days", type=int, default=30, help="days of synthetic rollups")
    parser.add_argument("--inproc", type=int, default=10, help="in-process timed requests")
    parser.add_argument(
        "--uncached", type=int, default=30,
        help="stability requests with RULEWATCH_REPORT_CACHE_S=0, one at a time",
    )  # fmt: skip
    return parser


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
