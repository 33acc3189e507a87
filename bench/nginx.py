"""Debian's nginx as a benchmark target: installed if missing, started on a spare port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

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
    listen 127.0.0.1:{port} backlog=4096;
    location /health {{ default_type application/json; return 200 '{{"status":"UP"}}'; }}
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


def start_nginx(port: int) -> subprocess.Popen[bytes]:
    """Run nginx in the foreground serving GET /health with a JSON body on ``port``."""
    root = Path(tempfile.mkdtemp(prefix="rulewatch-nginx-"))
    (root / "nginx.conf").write_text(CONF.format(root=root, port=port))
    return subprocess.Popen([ensure_nginx(), "-p", str(root), "-c", str(root / "nginx.conf")])
