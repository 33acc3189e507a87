"""The `rulewatch` command, driven through click on real databases and a real HTTP target."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch import create_app
from rulewatch.cli import main
from rulewatch.config import Settings, SmtpSettings
from rulewatch.db import transaction
from rulewatch.dsn_cipher import PREFIX, DsnCipher
from rulewatch.models import ApiToken, DataSource, Notification, Rule, User, utcnow
from rulewatch.services.notifications import RELAY_AFTER_S
from rulewatch.services.rules import create_rule
from rulewatch.services.tokens import token_hash
from rulewatch.services.users import HASHER
from tests.conftest import drop_database, fresh_database
from tests.smtp_server import Inbox
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
            "RULEWATCH_ADMIN_PASSWORD": None,
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
    assert "imported 0 new and 1 changed rule(s), 1 unchanged" in result.output
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


def test_it_emails_the_alert_of_a_cli_verification_through_a_worker_without_the_relay(
    cli: Cli, factory: sessionmaker[Session], settings: Settings, inbox: Inbox, smtp_port: int
) -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender="rw@example.com", timeout_s=5)
    worker_app = create_app(replace(settings, smtp=smtp)).extensions["celery"]
    with worker_app.connection() as conn:  # earlier tests' messages share the memory broker
        conn.default_channel.queue_purge("alerts")
    with transaction(factory) as session:
        alert = {"emails": ["ops@example.com"], "failure_threshold": 1}
        create_rule(session, http_rule("http://127.0.0.1:9/", alert=alert), utcnow())
    # one deployment: the CLI has the worker's settings (a thread worker runs its tasks in the
    # newest app); an alerts worker and no beat, so only the commit's enqueue can send it
    cli = Cli(
        {**cli.env, "RULEWATCH_SMTP_HOST": "127.0.0.1", "RULEWATCH_SMTP_PORT": str(smtp_port)}
    )
    with start_worker(worker_app, queues=["alerts"], perform_ping_check=False):
        assert cli("verify", "orders API").exit_code == 1
        _wait_for(lambda: len(inbox.messages) == 1, "the firing email")
        # the sender records "sent" once the SMTP conversation has ended, just after delivery
        _wait_for(lambda: _outcome_recorded(factory), "the row's outcome")
    [firing] = inbox.messages
    assert (firing["Subject"], firing["To"]) == ("[FIRING] orders API", "ops@example.com")
    with factory() as session:
        [row] = session.scalars(select(Notification))
        assert (row.status, row.attempts) == ("sent", 1)


def _outcome_recorded(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        [row] = session.scalars(select(Notification))
        return row.status not in ("pending", "sending")


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s`` (below the
    relay's RELAY_AFTER_S, so a relay could not be what made it hold)."""
    deadline = time.monotonic() + min(timeout_s, RELAY_AFTER_S / 2)
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.05)


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


def _stored_dsns(factory: sessionmaker[Session]) -> dict[str, str]:
    with factory() as session:
        return {d.name: d.dsn for d in session.scalars(select(DataSource))}


def test_it_stores_a_data_source_read_from_stdin_encrypted_without_echoing_it(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    result = cli("datasources", "add", "warehouse", input=f"{DSN}\n")
    assert result.exit_code == 0, result.output
    assert result.output == "data source 'warehouse' stored\n"
    stored = _stored_dsns(factory)["warehouse"]
    assert stored.startswith(PREFIX) and "S3cr3t-pw" not in stored
    again = cli("datasources", "add", "warehouse", input="sqlite:///orders.db\n")
    assert again.output == "data source 'warehouse' replaced\n"


def test_it_refuses_a_bad_data_source_without_echoing_the_dsn(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    result = cli("datasources", "add", "warehouse", input="mysql://root:S3cr3t-pw@db.internal/x\n")
    assert result.exit_code == 1
    assert (
        "data source not stored: dsn: the sql probe reads mysql with the pymysql" in result.output
    )
    assert "S3cr3t-pw" not in result.output and "db.internal" not in result.output
    bad_name = cli("datasources", "add", "Ware House", input=f"{DSN}\n")
    assert bad_name.exit_code == 1 and "name: a data source name is" in bad_name.output
    assert _stored_dsns(factory) == {}


def test_it_lists_data_sources_but_never_their_dsn(cli: Cli) -> None:
    cli("datasources", "add", "warehouse", input=f"{DSN}\n")
    result = cli("datasources", "list")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert line.split()[:3] == ["warehouse", "postgresql+psycopg", "db.internal/warehouse"]
    assert "stored" in line
    assert "S3cr3t-pw" not in result.output and "reader" not in result.output


def test_it_removes_a_data_source_only_once_no_rule_reads_from_it(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    cli("datasources", "add", "warehouse", input=f"{DSN}\n")
    cli("rules", "import", str(_write(tmp_path, RULES)))
    refused = cli("datasources", "remove", "warehouse")
    assert refused.exit_code == 1
    assert "used by 1 rule(s): 'nightly orders' (id" in refused.output
    assert "warehouse" in _stored_dsns(factory)
    with transaction(factory) as session:
        session.delete(session.scalars(select(Rule).where(Rule.name == "nightly orders")).one())
    assert cli("datasources", "remove", "warehouse").output == "data source 'warehouse' removed\n"
    assert _stored_dsns(factory) == {}
    assert "no data source named 'warehouse'" in cli("datasources", "remove", "warehouse").output


def test_it_checks_a_data_source_and_scrubs_the_dsn_from_the_failure(cli: Cli) -> None:
    cli("datasources", "add", "down", input="postgresql://reader:S3cr3t-pw@127.0.0.1:1/x\n")
    result = cli("datasources", "check", "down")
    assert result.exit_code == 1
    assert "data source 'down': cannot connect to the data source" in result.output
    assert "S3cr3t-pw" not in result.output
    cli("datasources", "add", "memory", input="sqlite://\n")
    ok = cli("datasources", "check", "memory")
    assert ok.exit_code == 0 and "data source 'memory' answered in" in ok.output


def test_db_upgrade_encrypts_plain_text_dsns_once_and_warns_of_undecryptable_ones(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    lost = DsnCipher.from_secret_keys("l" * 40).encrypt(DSN)
    with transaction(factory) as session:  # as versions before encryption stored them
        session.add(DataSource(name="legacy", dsn=DSN, created_at=utcnow()))
        session.add(DataSource(name="lost", dsn=lost, created_at=utcnow()))
    first = cli("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "encrypted 1 data source DSN(s) with the current secret key" in first.stdout
    assert "cannot decrypt data source 'lost': was RULEWATCH_SECRET_KEY changed?" in first.stderr
    stored = _stored_dsns(factory)
    assert stored["legacy"].startswith(PREFIX) and "S3cr3t-pw" not in stored["legacy"]
    assert stored["lost"] == lost
    second = cli("db", "upgrade")
    assert second.stdout == "database is up to date\n"
    assert _stored_dsns(factory)["legacy"] == stored["legacy"]
    listed = cli("datasources", "list").stdout
    assert "legacy" in listed and "db.internal/warehouse" in listed


def test_db_upgrade_re_encrypts_under_a_new_secret_key_given_the_previous_one(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    old, new = "o" * 40, "n" * 40
    with_old = Cli({**cli.env, "RULEWATCH_SECRET_KEY": old})
    with_old("datasources", "add", "warehouse", input=f"{DSN}\n")
    rotating = Cli({**cli.env, "RULEWATCH_SECRET_KEY": new, "RULEWATCH_SECRET_KEY_PREVIOUS": old})
    assert "encrypted 1 data source DSN(s)" in rotating("db", "upgrade").stdout
    stored = _stored_dsns(factory)["warehouse"]
    assert DsnCipher.from_secret_keys(new).decrypt(stored) == DSN
    assert "cannot decrypt" not in Cli({**cli.env, "RULEWATCH_SECRET_KEY": new})(
        "datasources", "list").stdout  # fmt: skip


# users and tokens


def _user(factory: sessionmaker[Session], name: str) -> User | None:
    with factory() as session:
        return session.scalar(select(User).where(User.name == name))


def test_it_creates_a_user_with_the_password_from_stdin(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    result = cli("users", "create", "Alice", "--role", "editor", input="a long passphrase\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "user 'alice' created with role editor\n"
    user = _user(factory, "alice")
    assert user is not None and user.role == "editor"
    assert HASHER.verify(user.password_hash, "a long passphrase")


def test_it_generates_and_prints_a_password_when_stdin_gives_none(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    result = cli("users", "create", "bob", "--role", "viewer", input="")
    assert result.exit_code == 0, result.output
    password = result.stdout.splitlines()[-1]
    assert "shown this once" in result.stdout and len(password) >= 20
    user = _user(factory, "bob")
    assert user is not None and HASHER.verify(user.password_hash, password)


def test_it_refuses_a_bad_user_and_says_why(cli: Cli, factory: sessionmaker[Session]) -> None:
    short = cli("users", "create", "carol", "--role", "viewer", input="short\n")
    assert short.exit_code == 1
    assert "password: the password must be at least 12 characters long" in short.output
    assert cli("users", "create", "bad name", "--role", "viewer").exit_code == 1
    bad_role = cli("users", "create", "carol", "--role", "boss")
    assert bad_role.exit_code == 2 and "'boss' is not one of" in bad_role.output
    cli("users", "create", "dave", "--role", "viewer", input="x" * 12 + "\n")
    taken = cli("users", "create", "DAVE", "--role", "admin", input="x" * 12 + "\n")
    assert taken.exit_code == 1 and "already exists" in taken.output
    assert _user(factory, "carol") is None


def test_it_lists_users_with_their_role(cli: Cli) -> None:
    cli("users", "create", "zed", "--role", "admin", input="")
    cli("users", "create", "amy", "--role", "viewer", input="")
    result = cli("users", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["amy", "viewer"], ["zed", "admin"]]
    assert "never signed in" in lines[0]


def test_it_prints_a_new_token_alone_on_its_last_line(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    cli("users", "create", "ci", "--role", "editor", input="")
    result = cli("tokens", "create", "--user", "ci", "--label", "deploys")
    assert result.exit_code == 0, result.output
    token = result.stdout.splitlines()[-1]
    assert token.startswith("rw_") and " " not in token
    with factory() as session:
        row = session.scalar(select(ApiToken))
        assert row is not None
        assert (row.label, row.user.name, row.prefix) == ("deploys", "ci", token[:10])
        assert row.token_hash == token_hash(token)
    listing = cli("tokens", "list").stdout
    assert token[:10] in listing and token not in listing and "deploys" in listing


def test_it_names_the_user_it_cannot_find_for_a_token(cli: Cli) -> None:
    result = cli("tokens", "create", "--user", "nobody")
    assert result.exit_code == 1
    assert "no user with id or name 'nobody'" in result.output


def test_it_revokes_a_token_by_id_or_prefix(cli: Cli, factory: sessionmaker[Session]) -> None:
    cli("users", "create", "ci", "--role", "editor", input="")
    first = cli("tokens", "create", "--user", "ci").stdout.splitlines()[-1]
    second = cli("tokens", "create", "--user", "ci").stdout.splitlines()[-1]
    by_prefix = cli("tokens", "revoke", first[:10])
    assert by_prefix.exit_code == 0, by_prefix.output
    assert "revoked" in by_prefix.stdout and first[:10] in by_prefix.stdout
    with factory() as session:
        second_id = session.scalar(select(ApiToken.id).where(ApiToken.prefix == second[:10]))
    assert cli("tokens", "revoke", str(second_id)).exit_code == 0
    again = cli("tokens", "revoke", str(second_id))
    assert again.exit_code == 0 and "already revoked" in again.stdout
    with factory() as session:
        assert all(t.revoked_at is not None for t in session.scalars(select(ApiToken)))
    unknown = cli("tokens", "revoke", "rw_nothing")
    assert unknown.exit_code == 1 and "no token has the id, prefix or text" in unknown.output


# up: the first admin


def test_up_creates_the_admin_once_with_the_password_it_is_given(
    cli: Cli, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rulewatch.supervisor.run_all", lambda *args: 0)  # no processes
    given = Cli({**cli.env, "RULEWATCH_ADMIN_PASSWORD": "the admin's passphrase"})
    first = given("up")
    assert first.exit_code == 0, first.output
    told = "created user 'admin' (role admin) with the password in RULEWATCH_ADMIN_PASSWORD"
    assert told in first.stdout
    user = _user(factory, "admin")
    assert user is not None and HASHER.verify(user.password_hash, "the admin's passphrase")
    again = cli("up")
    assert again.exit_code == 0 and "created user" not in again.stdout


def test_up_prints_a_random_admin_password_once(
    cli: Cli, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rulewatch.supervisor.run_all", lambda *args: 0)
    result = cli("up")
    told = r"created user 'admin' \(role admin\) with password (\S+)"
    [password] = re.findall(told, result.stdout)
    user = _user(factory, "admin")
    assert user is not None and user.role == "admin"
    assert HASHER.verify(user.password_hash, password)


def test_up_refuses_an_admin_password_too_short(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rulewatch.supervisor.run_all", lambda *args: 0)
    result = Cli({**cli.env, "RULEWATCH_ADMIN_PASSWORD": "short"})("up")
    assert result.exit_code == 1
    assert "RULEWATCH_ADMIN_PASSWORD is not usable" in result.output
    assert "at least 12 characters" in result.output


def test_it_says_to_migrate_when_the_database_has_no_schema(cli: Cli, empty_url: str) -> None:
    result = cli.on(empty_url)("users", "list")
    assert result.exit_code == 1
    assert "database error" in result.output and "rulewatch db upgrade" in result.output
    assert "Traceback" not in result.output
