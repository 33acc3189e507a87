"""CPU seconds and resident memory of the processes of one rulewatch deployment, from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    """Summed over a group of processes."""

    cpu_s: float
    rss_bytes: int
    processes: int


def usage(home: str, role: str) -> Usage:
    """CPU and RSS of live processes with RULEWATCH_HOME=home whose command line has ``role``."""
    needle = f"RULEWATCH_HOME={home}".encode()
    cpu, rss, count = 0.0, 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if role not in cmdline:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS
        rss += pages * PAGE
        count += 1
    return Usage(cpu, rss, count)
