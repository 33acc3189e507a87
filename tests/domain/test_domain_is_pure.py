"""The domain package stays pure Python: no web, queue, ORM or HTTP client imports."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("flask", "celery", "sqlalchemy", "kombu", "aiohttp")

PROBE = """
import importlib, json, pkgutil, sys

domain = importlib.import_module("rulewatch.domain")
names = [info.name for info in pkgutil.walk_packages(domain.__path__, "rulewatch.domain.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""


def _import_domain_in_a_fresh_interpreter() -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"importing rulewatch.domain failed:\n{done.stderr}"
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def test_it_imports_no_framework_from_the_domain_package() -> None:
    result = _import_domain_in_a_fresh_interpreter()
    assert {"rulewatch.domain.stability", "rulewatch.domain.schedule"} <= set(result["modules"])
    leaked = [
        name
        for name in result["loaded"]
        if any(name == root or name.startswith(root + ".") for root in FORBIDDEN)
    ]
    assert leaked == [], f"rulewatch.domain must stay pure Python but imported {leaked}"
