"""Debian's nginx as a benchmark target: installed if missing, started on spare ports."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

# any path answers, so rules can each have their own URL on each of several ports
CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
{listen}
    location / {{ default_type application/json; return 200 '{{"status":"UP"}}'; }}
  }}
}}
"""


def ensure_nginx() -> str:
    """Path to the nginx binary, installing Debian's nginx-light when it is missing."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True, env=env)
    return "/usr/sbin/nginx"


def start_nginx(ports: int | Sequence[int]) -> subprocess.Popen[bytes]:
    """Run nginx in the foreground answering every GET with a JSON body on each port."""
    ports = [ports] if isinstance(ports, int) else list(ports)
    root = Path(tempfile.mkdtemp(prefix="rulewatch-nginx-"))
    listen = "\n".join(f"    listen 127.0.0.1:{port} backlog=4096;" for port in ports)
    (root / "nginx.conf").write_text(CONF.format(root=root, listen=listen))
    return subprocess.Popen([ensure_nginx(), "-p", str(root), "-c", str(root / "nginx.conf")])


def target_urls(ports: Sequence[int], count: int) -> list[str]:
    """``count`` distinct URLs spread round-robin over ``ports``."""
    return [f"http://127.0.0.1:{ports[i % len(ports)]}/health/{i}" for i in range(count)]
