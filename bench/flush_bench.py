"""In-process verify_jobs rate: N http rules against nginx, in batches as a worker runs them.

Usage: python bench/flush_bench.py [--rules N] [--chunk C] [--ports P]
Creates N due http rules in a fresh PostgreSQL database and times verify_jobs over them,
chunk after chunk in this process, with no broker: the recording path alone (flushes
included). Uses only public service functions, so it runs against another revision too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, wait_port  # noqa: E402
from bench.database import scratch_database  # noqa: E402
from bench.nginx import start_nginx, target_urls  # noqa: E402
from bench.throughput import make_rules  # noqa: E402
from rulewatch.migrate import upgrade  # noqa: E402
from rulewatch.models import Rule  # noqa: E402
from rulewatch.probes import ProbeContext  # noqa: E402
from rulewatch.services.verification import Job, verify_jobs  # noqa: E402


def timed_rate(url: str, chunk: int) -> float:
    """Verifications recorded per second, verifying every rule once, ``chunk`` at a time."""
    engine = create_engine(url, pool_size=5)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        ids = list(session.scalars(select(Rule.id).order_by(Rule.id)))
    jobs = [Job(rule_id, str(uuid.uuid4())) for rule_id in ids]
    ctx = ProbeContext(datasources={})
    verify_jobs(factory, jobs[:10], ctx)  # warm: connections, parsing cache
    t0 = time.perf_counter()
    for i in range(0, len(jobs), chunk):
        verify_jobs(factory, jobs[i : i + chunk], ctx)
    rate = len(jobs) / (time.perf_counter() - t0)
    engine.dispose()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=3000)
    p.add_argument("--chunk", type=int, default=500)
    p.add_argument("--ports", type=int, default=4)
    args = p.parse_args()
    with scratch_database() as url:
        upgrade(url)
        ports = [free_port() for _ in range(args.ports)]
        nginx = start_nginx(ports)
        try:
            for port in ports:
                wait_port(port)
            make_rules(url, target_urls(ports, args.rules))
            rate = timed_rate(url, args.chunk)
        finally:
            nginx.terminate()
            nginx.wait(30)
    print(json.dumps({"rules": args.rules, "chunk": args.chunk,
                      "verifications_per_s": round(rate, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
