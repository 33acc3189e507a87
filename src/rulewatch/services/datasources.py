"""Data sources: named databases sql rules read from, stored with their DSN encrypted.

Those in RULEWATCH_DATASOURCES come from settings; stored ones (API, CLI) take precedence.
Nothing here returns a DSN or puts one in a message: only its dialect, driver and host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.domain.observation import Observation
from rulewatch.dsn_cipher import DsnCipher, DsnUndecryptable
from rulewatch.models import DataSource, Rule
from rulewatch.probes.sql import run_read_only
from rulewatch.schemas import FieldError, InputInvalid
from rulewatch.shapes import DataSourceOut, answer

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
NAME_RULE = "1 to 64 of a-z 0-9 _ . - (lower case), starting with a letter or digit"
MAX_DSN = 2000
EXAMPLE_DSN = "postgresql+psycopg://reader@db.example/warehouse"
# the synchronous drivers the sql probe runs with (installed with rulewatch)
DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql", "sqlite": "pysqlite"}
CHECK_TIMEOUT_S = 5.0


class DataSourceInvalid(InputInvalid):
    """A data source's name or DSN failed validation (the messages never quote the DSN)."""

    what = "data source"


class DataSourceNotFound(LookupError):
    """No data source has that name."""


class DataSourceInUse(Exception):
    """Rules read from the data source: it cannot be removed under them."""

    def __init__(self, name: str, rules: list[tuple[int, str]]) -> None:
        self.rules = rules
        listed = ", ".join(f"{rule_name!r} (id {rule_id})" for rule_id, rule_name in rules)
        super().__init__(
            f"data source {name!r} is used by {len(rules)} rule(s): {listed};"
            " point them at another data source or delete them first"
        )


class DataSourceInSettings(Exception):
    """The data source comes from RULEWATCH_DATASOURCES, which only its operator changes."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"data source {name!r} is defined in RULEWATCH_DATASOURCES: remove it there"
        )


@dataclass(frozen=True)
class DataSourceInfo:
    """What may be shown of a data source: never its DSN, user or password."""

    name: str
    origin: str  # "stored" or "settings"
    dialect: str | None
    driver: str | None
    host: str | None
    port: int | None
    database: str | None
    created_at: datetime | None
    problem: str | None = None  # why rules cannot use it, when they cannot


def undecryptable(name: str) -> str:
    """The fault recorded on rules whose data source no key decrypts."""
    return (
        f"cannot decrypt data source {name!r}: was RULEWATCH_SECRET_KEY changed? Store its DSN"
        " again, or set RULEWATCH_SECRET_KEY_PREVIOUS to the key it was stored with"
    )


def validate_name(name: Any) -> str:
    """``name`` if it is a valid data source name; DataSourceInvalid otherwise."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DataSourceInvalid([FieldError("name", f"a data source name is {NAME_RULE}")])
    return name


def validate_dsn(dsn: Any) -> str:
    """``dsn`` stripped, if it is a URL of a database and driver the sql probe supports."""
    problem = _dsn_problem(dsn)
    if problem:
        raise DataSourceInvalid([FieldError("dsn", problem)])
    assert isinstance(dsn, str)
    return dsn.strip()


def _dsn_problem(dsn: Any) -> str | None:
    if not isinstance(dsn, str) or not dsn.strip():
        return f"give the DSN as text, like {EXAMPLE_DSN}"
    if len(dsn) > MAX_DSN:
        return f"a DSN is at most {MAX_DSN} characters"
    try:
        url = make_url(dsn.strip())
    except (ArgumentError, ValueError):
        return f"not a database URL: write it like {EXAMPLE_DSN}"
    backend = url.get_backend_name()
    if backend not in DRIVERS:
        return f"{backend} is not supported for sql rules: use PostgreSQL, MySQL/MariaDB or SQLite"
    wanted = DRIVERS[backend]
    if _driver(url) != wanted:
        return (
            f"the sql probe reads {backend} with the {wanted} driver: write {backend}+{wanted}://"
        )
    if "plugin" in url.query:
        return "engine plugins (plugin=) are not allowed in a data source"
    return None


def _driver(url: URL) -> str:
    """The driver SQLAlchemy would use (the dialect's default when the URL names none)."""
    try:
        return str(url.get_dialect().driver)
    except (NoSuchModuleError, ImportError):
        return url.get_driver_name()


def put_datasource(
    session: Session, name: Any, dsn: Any, cipher: DsnCipher, now: datetime
) -> tuple[DataSource, bool]:
    """Store a data source, or replace its DSN; returns it and whether it was created."""
    errors = []
    for check, value in ((validate_name, name), (validate_dsn, dsn)):
        try:
            check(value)
        except DataSourceInvalid as exc:
            errors += exc.errors
    if errors:
        raise DataSourceInvalid(errors)
    stored = cipher.encrypt(validate_dsn(dsn))
    row = session.get(DataSource, name)
    if row is not None:
        row.dsn = stored
        return row, False
    row = DataSource(name=name, dsn=stored, created_at=now)
    session.add(row)
    session.flush()
    return row, True


def list_datasources(
    session: Session, configured: Mapping[str, str], cipher: DsnCipher
) -> list[DataSourceInfo]:
    """Every data source rules can name, stored and from settings, by name."""
    stored = {row.name: row for row in session.scalars(select(DataSource))}
    infos = [_stored_info(row, cipher) for row in stored.values()]
    infos += [_info(n, "settings", dsn, None) for n, dsn in configured.items() if n not in stored]
    return sorted(infos, key=lambda info: info.name)


def datasource_names(session: Session, configured: Mapping[str, str]) -> list[str]:
    """The names sql rules may use, stored and from settings (nothing decrypted)."""
    return sorted(set(session.scalars(select(DataSource.name))) | set(configured))


def get_datasource(
    session: Session, name: str, configured: Mapping[str, str], cipher: DsnCipher
) -> DataSourceInfo:
    """One data source, as list_datasources shows it."""
    row = session.get(DataSource, name)
    if row is not None:
        return _stored_info(row, cipher)
    if name in configured:
        return _info(name, "settings", configured[name], None)
    raise DataSourceNotFound(f"no data source named {name!r}")


def _stored_info(row: DataSource, cipher: DsnCipher) -> DataSourceInfo:
    try:
        dsn = cipher.decrypt(row.dsn)
    except DsnUndecryptable:
        return DataSourceInfo(row.name, "stored", None, None, None, None, None,
                              row.created_at, undecryptable(row.name))  # fmt: skip
    return _info(row.name, "stored", dsn, row.created_at)


def _info(name: str, origin: str, dsn: str, created_at: datetime | None) -> DataSourceInfo:
    try:
        url = make_url(dsn)
    except (ArgumentError, ValueError):
        problem = f"the DSN of data source {name!r} is not a database URL"
        return DataSourceInfo(name, origin, None, None, None, None, None, created_at, problem)
    return DataSourceInfo(
        name, origin, url.get_backend_name(), _driver(url), url.host, url.port, url.database,
        created_at,
    )  # fmt: skip


def datasource_to_dict(info: DataSourceInfo) -> dict[str, Any]:
    """The API form: where the database is and whether rules can use it, never the DSN."""
    return answer(
        DataSourceOut, name=info.name, origin=info.origin, dialect=info.dialect,
        driver=info.driver, host=info.host, port=info.port, database=info.database,
        created_at=info.created_at, usable=info.problem is None, problem=info.problem,
    )  # fmt: skip


def rules_using(session: Session, name: str) -> list[tuple[int, str]]:
    """(id, name) of the sql rules that read from data source ``name``."""
    rows = session.execute(
        select(Rule.id, Rule.name, Rule.target).where(Rule.kind == "sql").order_by(Rule.name)
    )
    return [(rule_id, rule_name) for rule_id, rule_name, target in rows
            if isinstance(target, dict) and target.get("datasource") == name]  # fmt: skip


def delete_datasource(session: Session, name: str, configured: Mapping[str, str]) -> None:
    """Forget a stored data source; refused while rules read from it (and nothing else would)."""
    row = session.get(DataSource, name)
    if row is None:
        if name in configured:
            raise DataSourceInSettings(name)
        raise DataSourceNotFound(f"no data source named {name!r}")
    if name not in configured:  # with one in settings too, its rules carry on with that one
        users = rules_using(session, name)
        if users:
            raise DataSourceInUse(name, users)
    session.delete(row)


def usable_datasources(
    session: Session, configured: Mapping[str, str], cipher: DsnCipher
) -> tuple[dict[str, str], dict[str, str]]:
    """DSNs by name (stored ones over settings), and the faults of those no key decrypts."""
    dsns, faults = dict(configured), {}
    for row in session.scalars(select(DataSource)):
        try:
            dsns[row.name] = cipher.decrypt(row.dsn)
        except DsnUndecryptable:
            dsns.pop(row.name, None)
            faults[row.name] = undecryptable(row.name)
    return dsns, faults


def encrypt_stored_dsns(session: Session, cipher: DsnCipher) -> tuple[int, list[str]]:
    """Encrypt plain-text DSNs and re-encrypt old-key ones under the current key (idempotent).

    Returns how many rows changed and the names of those no key decrypts (left as they are).
    """
    changed, stuck = 0, []
    for row in session.scalars(select(DataSource).order_by(DataSource.name)):
        try:
            again = cipher.reencrypted(row.dsn)
        except DsnUndecryptable:
            stuck.append(row.name)
            continue
        if again is not None:
            row.dsn = again
            changed += 1
    return changed, stuck


def check_datasource(
    factory: sessionmaker[Session], name: str, configured: Mapping[str, str], cipher: DsnCipher
) -> Observation:
    """Connect to data source ``name`` and run ``SELECT 1``, as its rules would."""
    with factory() as session:
        get_datasource(session, name, configured, cipher)  # DataSourceNotFound
        dsns, faults = usable_datasources(session, configured, cipher)
    if name in faults:
        return Observation(connected=False, fault=faults[name])
    return run_read_only(dsns[name], "SELECT 1", timeout_s=CHECK_TIMEOUT_S, row_limit=1)
