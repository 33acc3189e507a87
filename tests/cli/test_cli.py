"""The `rulewatch` command, driven through click on real databases and a real HTTP target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.cli import main
from rulewatch.db import transaction
from rulewatch.models import Rule, utcnow
from rulewatch.services.rules import create_rule
from tests.conftest import drop_database, fresh_database
from tests.targets import Target, http_rule

# The CLI is a thin adapter: SQLite and PostgreSQL are enough to prove the wiring.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

RULES = """\
- name: orders API
  kind: http
  target: {url: "http://127.0.0.1:9/health", timeout_s: 5}
  conditions: ["[STATUS] == 200", "[RESPONSE_TIME] < 500"]
  interval_s: 60
  tags: [shop, api]
- name: nightly orders
  kind: sql
  target: {datasource: warehouse, query: "SELECT count(*) FROM orders"}
  conditions: ["[VALUE] > 0"]
  cron: "0 3 * * *"
  timezone: Europe/Paris
  stability_target: 0.95
"""


@dataclass
class Cli:
    """Runs `rulewatch ARGS` with the environment of one test deployment."""

    env: dict[str, str | None]

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            main, list(args), input, self.env, catch_exceptions=False, prog_name="rulewatch"
        )

    def on(self, database_url: str) -> Cli:
        """The same deployment pointed at another database."""
        return Cli({**self.env, "RULEWATCH_DATABASE_URL": database_url})


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    """The rulewatch command on the test database, with an in-memory broker."""
    return Cli(
        {
            "RULEWATCH_HOME": str(tmp_path / "home"),
            "RULEWATCH_DATABASE_URL": database_url,
            "RULEWATCH_BROKER_URL": "memory://",
            "RULEWATCH_RESULT_BACKEND": "cache+memory://",
            "RULEWATCH_DATASOURCES": None,
        }
    )


@pytest.fixture
def empty_url(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no schema at all, on the same engine as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = request.getfixturevalue("pg_server")
    url, name = fresh_database(admin)
    yield url
    drop_database(admin, name)


def _write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rule_names(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(Rule.name).order_by(Rule.name)))


def _http_rule(factory: sessionmaker[Session], url: str) -> None:
    with transaction(factory) as session:
        create_rule(session, http_rule(url), utcnow())


# db upgrade


def test_it_creates_the_schema_on_an_empty_database(cli: Cli, empty_url: str) -> None:
    result = cli.on(empty_url)("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "database is up to date" in result.output
    engine = create_engine(empty_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"rules", "verifications", "datasources", "alembic_version"} <= tables


# rules import / export


def test_it_imports_a_yaml_list_of_rules(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    result = cli("rules", "import", str(_write(tmp_path, RULES)))
    assert result.exit_code == 0, result.output
    assert "imported 2 new and 0 changed rule(s)" in result.output
    assert _rule_names(factory) == ["nightly orders", "orders API"]


def test_it_imports_rules_given_under_a_rules_key(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    indented = "".join(f"  {line}\n" for line in RULES.splitlines())
    result = cli("rules", "import", str(_write(tmp_path, f"rules:\n{indented}")))
    assert result.exit_code == 0, result.output
    assert _rule_names(factory) == ["nightly orders", "orders API"]


def test_it_updates_rules_by_name_on_a_second_import(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    cli("rules", "import", str(_write(tmp_path, RULES)))
    changed = RULES.replace("interval_s: 60", "interval_s: 120")
    result = cli("rules", "import", str(_write(tmp_path, changed, "changed.yaml")))
    assert result.exit_code == 0, result.output
    assert "imported 0 new and 2 changed rule(s)" in result.output
    with factory() as session:
        rule = session.scalar(select(Rule).where(Rule.name == "orders API"))
        assert rule is not None and rule.interval_s == 120
    assert _rule_names(factory) == ["nightly orders", "orders API"]


def test_it_imports_nothing_when_one_rule_is_bad_and_says_where(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = RULES.replace('["[VALUE] > 0"]', '["[VALUE] = 0"]')
    result = cli("rules", "import", str(_write(tmp_path, bad)))
    assert result.exit_code == 1
    assert "nothing imported" in result.output
    assert "rules[1].conditions[0] (position 8): unknown operator '=' (use ==)" in result.output
    assert _rule_names(factory) == []


def test_it_refuses_a_file_that_is_not_yaml(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = _write(tmp_path, "- name: [orders API\n  kind: http\n")
    result = cli("rules", "import", str(path))
    assert result.exit_code == 1
    assert f"{path} is not valid YAML" in result.output
    assert "line 1" in result.output
    assert _rule_names(factory) == []


def test_it_exports_rules_that_import_back_to_the_same_text(cli: Cli, tmp_path: Path) -> None:
    cli("rules", "import", str(_write(tmp_path, RULES)))
    first = cli("rules", "export").stdout
    reimport = cli("rules", "import", str(_write(tmp_path, first, "export.yaml")))
    assert reimport.exit_code == 0, reimport.output
    assert cli("rules", "export").stdout == first
    assert "Europe/Paris" in first and "- shop" in first


def test_it_recreates_every_rule_from_an_export_in_an_empty_database(
    cli: Cli, empty_url: str, tmp_path: Path
) -> None:
    cli("rules", "import", str(_write(tmp_path, RULES)))
    exported = _write(tmp_path, cli("rules", "export").stdout, "export.yaml")
    other = cli.on(empty_url)
    other("db", "upgrade")
    result = other("rules", "import", str(exported))
    assert "imported 2 new and 0 changed rule(s)" in result.output
    assert other("rules", "export").stdout == exported.read_text()


# verify


def test_it_verifies_a_rule_in_process_and_prints_the_passing_verification(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    with Target() as target:
        _http_rule(factory, target.url)
        result = cli("verify", "orders API")
        assert target.hits == 1
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["rule_name"], printed["status"], printed["trigger"]) == (
        "orders API", "pass", "manual",
    )  # fmt: skip


def test_it_exits_1_when_the_verification_fails(cli: Cli, factory: sessionmaker[Session]) -> None:
    with Target() as target:
        target.status = 500
        _http_rule(factory, target.url)
        result = cli("verify", "orders API")
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    assert printed["status"] == "fail"
    assert "[STATUS] (500) == 200" in [c["resolved"] for c in printed["conditions"]]


def test_it_names_the_rule_it_cannot_find_to_verify(cli: Cli) -> None:
    result = cli("verify", "no such rule")
    assert result.exit_code == 1
    assert "no rule with id or name 'no such rule'" in result.output


# report


def test_it_writes_the_stability_report_as_html(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    with Target() as target:
        _http_rule(factory, target.url)
        cli("verify", "orders API")
    result = cli("report", "--window", "7d", "--out", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!doctype html>")
    assert "<td>orders API</td>" in html
    assert "100.000%" in html


def test_it_rejects_a_report_window_it_cannot_read(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = cli("report", "--window", "7x", "--out", str(out))
    assert result.exit_code == 2
    assert "Invalid value for" in result.output and "--window" in result.output
    assert "window '7x' not understood" in result.output
    assert not out.exists()


# datasources

DSN = "postgresql://reader:S3cr3t-pw@db.internal/warehouse"


def test_it_stores_a_data_source_read_from_stdin_without_echoing_it(cli: Cli) -> None:
    result = cli("datasources", "add", "warehouse", input=f"{DSN}\n")
    assert result.exit_code == 0, result.output
    assert "data source 'warehouse' stored" in result.output
    assert "S3cr3t-pw" not in result.output


def test_it_lists_data_source_names_but_never_their_dsn(cli: Cli) -> None:
    cli("datasources", "add", "warehouse", input=f"{DSN}\n")
    result = cli("datasources", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout == "warehouse\n"
