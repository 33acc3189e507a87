"""Module boundaries: no module reaches into another's privates; the api and ui stay apart."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import rulewatch

PACKAGE = Path(rulewatch.__file__).parent


def _imports(path: Path) -> Iterator[tuple[str, str]]:
    """(module, name) of every ``from rulewatch... import name`` in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rulewatch"):
            for alias in node.names:
                yield node.module or "", alias.name


def _sources(under: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "migrations" not in p.parts)


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")


def test_it_finds_no_private_name_imported_from_another_module() -> None:
    private = [
        f"{_name(path)} imports {name} from {module}"
        for path in _sources()
        for module, name in _imports(path)
        if name.startswith("_") and not name.startswith("__") and module != _name(path)
    ]
    assert private == []


def test_it_keeps_the_pages_and_the_api_from_importing_each_other() -> None:
    web = PACKAGE / "web"
    api_modules = [p for p in web.glob("api*.py")]
    crossing = [
        f"{_name(path)} imports {module}"
        for path in _sources(web / "ui")
        for module, _ in _imports(path)
        if module.startswith("rulewatch.web.api")
    ] + [
        f"{_name(path)} imports {module}"
        for path in api_modules
        for module, _ in _imports(path)
        if module.startswith("rulewatch.web.ui")
    ]
    assert api_modules and crossing == []


def test_it_queues_work_only_through_the_dispatch_module() -> None:
    adapters = [*_sources(PACKAGE / "web"), PACKAGE / "cli.py"]
    queueing = [
        f"{_name(path)} imports {name} from {module}"
        for path in adapters
        for module, name in _imports(path)
        if module in ("rulewatch.tasks", "rulewatch.celery_app") or name == "AsyncResult"
    ]
    assert queueing == []


def test_it_keeps_the_services_and_the_answer_shapes_out_of_the_web_layer() -> None:
    below_web = [*_sources(PACKAGE / "services"), PACKAGE / "shapes.py"]
    reaching_up = [
        f"{_name(path)} imports {module}"
        for path in below_web
        for module, _ in _imports(path)
        if module.startswith("rulewatch.web")
    ]
    assert (PACKAGE / "shapes.py").exists() and reaching_up == []
