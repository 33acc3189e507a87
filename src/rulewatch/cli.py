"""The `rulewatch` command: thin adapters over the services."""

from __future__ import annotations

import json
import socket
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml
from flask import Flask

from rulewatch import create_app
from rulewatch.config import QUEUES, ConfigError, load_settings
from rulewatch.db import transaction
from rulewatch.domain.access import ROLES
from rulewatch.models import utcnow
from rulewatch.runtime import Runtime
from rulewatch.schemas import RuleInvalid
from rulewatch.yaml_load import load_yaml


def _app() -> Flask:
    try:
        return create_app(load_settings())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _rt(app: Flask) -> Runtime:
    rt: Runtime = app.extensions["rulewatch"]
    return rt


class _Commands(click.Group):
    """Database trouble ends a command with one line that says what to do, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            problem = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            raise click.ClickException(
                f"database error: {problem}. Is RULEWATCH_DATABASE_URL right and reachable, "
                "and its schema up to date (`rulewatch db upgrade`)?"
            ) from None


@click.group(cls=_Commands)
@click.version_option(package_name="rulewatch")
def main() -> None:
    """rulewatch: verify rules on a schedule, record every run, report stability."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--concurrency", "-c", default=4, show_default=True, type=int)
def up(host: str, port: int, concurrency: int) -> None:
    """Run web, worker and beat together on embedded storage (one machine)."""
    from rulewatch.supervisor import run_all

    app = _app()
    settings = _rt(app).settings
    _upgrade(_rt(app))
    _first_admin(_rt(app))
    click.echo(f"rulewatch home: {settings.home}")
    click.echo(f"UI:  http://{host}:{port}/")
    click.echo(f"API: http://{host}:{port}/api/v1/rules")
    sys.exit(run_all(host, port, concurrency))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", "-w", default=2, show_default=True, type=int)
def web(host: str, port: int, workers: int) -> None:
    """Serve the web UI and API with gunicorn."""
    from rulewatch.wsgi_server import serve

    serve(host, port, workers)


@main.command()
@click.option("-Q", "--queues", default=",".join(QUEUES), show_default=True)
@click.option("-c", "--concurrency", default=4, show_default=True, type=int)
@click.option("--loglevel", default="INFO", show_default=True)
def worker(queues: str, concurrency: int, loglevel: str) -> None:
    """Run a Celery worker consuming QUEUES."""
    unknown = sorted(set(queues.split(",")) - set(QUEUES))
    if unknown:
        raise click.BadParameter(
            f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}"
        )
    _run_worker(["-Q", queues, "-c", str(concurrency)], loglevel)


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
def scheduler(loglevel: str) -> None:
    """Run the scheduler queue (beat's ticks, pruning) in one process of its own.

    Its own process, apart from the checks' pool, so a tick never waits behind checks.
    """
    _run_worker(["-Q", "scheduler", "--pool", "solo"], loglevel)


def _run_worker(options: list[str], loglevel: str) -> None:
    celery = _app().extensions["celery"]
    name = f"rulewatch-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    argv = ["worker", *options, "-n", name, "--loglevel", loglevel]
    celery.worker_main([*argv, "--without-mingle", "--without-gossip"])


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run celery beat: it starts verify_all_rules every tick and prune every hour."""
    app = _app()
    schedule = _rt(app).settings.home / "celerybeat-schedule"
    app.extensions["celery"].start(["beat", "-s", str(schedule), "--loglevel", loglevel])


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations, then encrypt data source DSNs stored in plain text."""
    _upgrade(_rt(_app()))
    click.echo("database is up to date")


def _upgrade(rt: Runtime) -> None:
    """Migrate, then encrypt stored DSNs that are plain or under a previous key (idempotent)."""
    from rulewatch.migrate import upgrade
    from rulewatch.services.datasources import encrypt_stored_dsns, undecryptable

    upgrade(rt.settings.database_url)
    with transaction(rt.factory) as session:
        changed, stuck = encrypt_stored_dsns(session, rt.dsn_cipher)
    if changed:
        click.echo(f"encrypted {changed} data source DSN(s) with the current secret key")
    for name in stuck:
        click.echo(f"warning: {undecryptable(name)}", err=True)


@main.group()
def rules() -> None:
    """Import and export rules as YAML."""


@rules.command("import")
@click.argument("file", type=click.File("r"))
def rules_import(file: Any) -> None:
    """Create or update the rules in FILE (YAML list, or {rules: [...]}); all or nothing."""
    from rulewatch.services.rule_import import import_rules

    try:
        data = load_yaml(file.read())
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file.name} is not valid YAML: {exc}") from None
    items = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise click.ClickException(f"{file.name}: expected a list of rules or a 'rules:' list")
    runtime = _rt(_app())
    alerts, base_url = runtime.settings.alerts, runtime.settings.base_url
    try:
        with transaction(runtime.factory) as session:
            counts = import_rules(session, items, utcnow(), alerts, base_url)
    except RuleInvalid as exc:
        lines = "\n".join(_error_line(e.as_dict()) for e in exc.errors)
        raise click.ClickException(f"{file.name}: nothing imported:\n{lines}") from None
    unchanged = f", {counts.unchanged} unchanged" if counts.unchanged else ""
    click.echo(f"imported {counts.created} new and {counts.updated} changed rule(s){unchanged}")


def _error_line(err: dict[str, Any]) -> str:
    where = f" (position {err['position']})" if "position" in err else ""
    return f"  {err['field']}{where}: {err['message']}"


@rules.command("export")
@click.option("--out", type=click.Path(dir_okay=False), default="-", show_default=True)
def rules_export(out: str) -> None:
    """Write every rule as YAML."""
    from rulewatch.services.rules import export_rules

    with _rt(_app()).factory() as session:
        text = yaml.safe_dump({"rules": export_rules(session)}, sort_keys=False, allow_unicode=True)
    click.echo(text, nl=False) if out == "-" else Path(out).write_text(text)


@main.command()
@click.argument("rule")
def verify(rule: str) -> None:
    """Verify RULE (name or id) now, in this process, and print the verification."""
    from rulewatch.services.rules import RuleNotFound, get_rule
    from rulewatch.services.verification import Alerting, Job, verify_one

    rt = _rt(_app())
    with rt.factory() as session:
        try:
            rule_id = get_rule(session, rule).id
        except RuleNotFound as exc:
            raise click.ClickException(str(exc)) from None
    # alerts it writes are enqueued for the alerts workers as its transaction commits
    alerting = Alerting(rt.settings.alerts, rt.settings.base_url)
    result = verify_one(rt.factory, Job(rule_id, str(uuid.uuid4())), rt.probe_context(), alerting)
    click.echo(json.dumps(result, indent=2))
    sys.exit(0 if result["status"] == "pass" else 1)


@main.command()
@click.option("--window", default="7d", show_default=True)
@click.option("--tag", default=None)
@click.option("--out", type=click.Path(dir_okay=False), default="-", show_default=True)
def report(window: str, tag: str | None, out: str) -> None:
    """Write the stability report as HTML."""
    from rulewatch.services.reports import render_stability_html
    from rulewatch.services.stability import stability_report

    with _rt(_app()).factory() as session:
        try:
            html = render_stability_html(stability_report(session, window, utcnow(), tag))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--window") from None
    click.echo(html, nl=False) if out == "-" else Path(out).write_text(html)


@main.group()
def datasources() -> None:
    """Named databases that sql rules read from."""


@datasources.command("add")
@click.argument("name")
def datasources_add(name: str) -> None:
    """Store data source NAME, or replace its DSN: read from standard input (or asked for
    without echo at a terminal), kept encrypted, never shown."""
    from rulewatch.services.datasources import DataSourceInvalid, put_datasource

    if sys.stdin.isatty():
        dsn = click.prompt("DSN", hide_input=True)
    else:
        dsn = sys.stdin.readline().strip()
    rt = _rt(_app())
    try:
        with transaction(rt.factory) as session:
            _, created = put_datasource(session, name, dsn, rt.dsn_cipher, utcnow())
    except DataSourceInvalid as exc:
        raise click.ClickException(f"data source not stored: {exc}") from None
    click.echo(f"data source {name!r} {'stored' if created else 'replaced'}")


@datasources.command("list")
def datasources_list() -> None:
    """List data sources: name, database, host, origin; never a DSN."""
    from rulewatch.services.datasources import list_datasources

    rt = _rt(_app())
    with rt.factory() as session:
        infos = list_datasources(session, rt.settings.datasources, rt.dsn_cipher)
    for info in infos:
        kind = f"{info.dialect}+{info.driver}" if info.dialect else "?"
        host = f"{info.host or ''}{f':{info.port}' if info.port else ''}/{info.database or ''}"
        origin = "settings" if info.origin == "settings" else f"stored {_when(info.created_at)}"
        click.echo(f"{info.name:<24} {kind:<20} {host:<40} {origin}  {info.problem or ''}".rstrip())


@datasources.command("remove")
@click.argument("name")
def datasources_remove(name: str) -> None:
    """Forget stored data source NAME; refused while rules read from it."""
    from rulewatch.services.datasources import (
        DataSourceInSettings,
        DataSourceInUse,
        DataSourceNotFound,
        delete_datasource,
    )

    rt = _rt(_app())
    try:
        with transaction(rt.factory) as session:
            delete_datasource(session, name, rt.settings.datasources)
    except (DataSourceNotFound, DataSourceInUse, DataSourceInSettings) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"data source {name!r} removed")


@datasources.command("check")
@click.argument("name")
def datasources_check(name: str) -> None:
    """Connect to data source NAME and run SELECT 1, as its rules would."""
    from rulewatch.services.datasources import DataSourceNotFound, check_datasource

    rt = _rt(_app())
    try:
        seen = check_datasource(rt.factory, name, rt.settings.datasources, rt.dsn_cipher)
    except DataSourceNotFound as exc:
        raise click.ClickException(str(exc)) from None
    problem = seen.fault or seen.failure
    if problem:
        raise click.ClickException(f"data source {name!r}: {problem}")
    click.echo(f"data source {name!r} answered in {seen.response_time_ms or 0:.0f} ms")


def _first_admin(rt: Runtime) -> None:
    """With no user yet, create `admin` (RULEWATCH_ADMIN_PASSWORD, or a random password)."""
    from rulewatch.services.users import UserInvalid, ensure_first_admin, generate_password

    password = rt.settings.admin_password or generate_password()
    try:
        with transaction(rt.factory) as session:
            if ensure_first_admin(session, password, utcnow()) is None:
                return
    except UserInvalid as exc:
        raise click.ClickException(f"RULEWATCH_ADMIN_PASSWORD is not usable: {exc}") from None
    if rt.settings.admin_password:
        click.echo(
            "created user 'admin' (role admin) with the password in RULEWATCH_ADMIN_PASSWORD"
        )
    else:
        click.echo(f"created user 'admin' (role admin) with password {password}")
        click.echo("  (shown this once: sign in and keep it, or set RULEWATCH_ADMIN_PASSWORD)")


@main.group()
def users() -> None:
    """People who sign in, each with a role: viewer, editor or admin."""


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="what the user may do")
def users_create(name: str, role: str) -> None:
    """Create user NAME; the password is read from standard input, else generated and printed."""
    from rulewatch.services.users import UserInvalid, create_user, generate_password

    given = _password_from_stdin()
    password = given or generate_password()
    try:
        with transaction(_rt(_app()).factory) as session:
            user = create_user(session, name, role, password, utcnow())
    except UserInvalid as exc:
        raise click.ClickException(f"user not created: {exc}") from None
    if given:
        click.echo(f"user {user.name!r} created with role {role}")
    else:
        click.echo(f"user {user.name!r} created with role {role}; password (shown this once):")
        click.echo(password)


def _password_from_stdin() -> str | None:
    """The first line of standard input, unless it is a terminal (no echo-free prompt here)."""
    if sys.stdin.isatty():
        return None
    return sys.stdin.readline().rstrip("\r\n") or None


@users.command("list")
def users_list() -> None:
    """List users with their role and last sign-in."""
    from rulewatch.services.users import list_users

    with _rt(_app()).factory() as session:
        for user in list_users(session):
            last = _when(user.last_login_at) or "never signed in"
            click.echo(f"{user.name:<24} {user.role:<7} {last}")


def _when(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else None


@main.group()
def tokens() -> None:
    """Bearer tokens for the API and scripts."""


@tokens.command("create")
@click.option("--user", "name", required=True, help="the user the token acts as")
@click.option("--label", default=None, help="what the token is for, shown in listings")
def tokens_create(name: str, label: str | None) -> None:
    """Create a token for a user; the token is printed alone on the last line, this once."""
    from rulewatch.services.tokens import TokenInvalid, create_token
    from rulewatch.services.users import UserNotFound, get_user

    try:
        with transaction(_rt(_app()).factory) as session:
            user = get_user(session, name)
            token, text = create_token(session, user, label, utcnow())
    except UserNotFound as exc:
        raise click.ClickException(f"{exc}: `rulewatch users list` shows them") from None
    except TokenInvalid as exc:
        raise click.ClickException(f"token not created: {exc}") from None
    click.echo(f"token {token.id} for {user.name!r} created; it is shown this once:")
    click.echo(text)


@tokens.command("list")
def tokens_list() -> None:
    """List tokens (prefix, user, label, last use), newest first; never their text."""
    from rulewatch.services.tokens import list_tokens

    with _rt(_app()).factory() as session:
        for t in list_tokens(session):
            state = f"revoked {_when(t.revoked_at)}" if t.revoked_at else "active"
            used = _when(t.last_used_at) or "never used"
            click.echo(
                f"{t.id:>5} {t.prefix} {t.user.name:<24} {state:<28} {used}  {t.label or ''}"
            )


@tokens.command("revoke")
@click.argument("token")
def tokens_revoke(token: str) -> None:
    """Revoke TOKEN (its id, its prefix, or its text): refused from the next request on."""
    from rulewatch.services.tokens import TokenNotFound, find_token, revoke_token

    try:
        with transaction(_rt(_app()).factory) as session:
            row = find_token(session, token)
            revoked = revoke_token(row, utcnow())
            owner = row.user.name
    except TokenNotFound as exc:
        raise click.ClickException(str(exc)) from None
    if revoked:
        click.echo(f"token {row.id} ({row.prefix}..., user {owner!r}) revoked")
    else:
        click.echo(f"token {row.id} ({row.prefix}..., user {owner!r}) was already revoked")
