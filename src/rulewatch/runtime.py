"""What one process needs to do its work: settings, an engine and a session factory."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import Settings, secret_key
from rulewatch.db import make_engine, make_session_factory
from rulewatch.dsn_cipher import DsnCipher
from rulewatch.outage import OutageLog, database_label
from rulewatch.probes import ProbeContext
from rulewatch.services.stability import ReportCache


@dataclass
class Runtime:
    """Lazily opened database access; safe across fork (each process opens its own pool)."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _factory: sessionmaker[Session] | None = field(default=None, repr=False)
    _pid: int = field(default=0, repr=False)
    _cipher: DsnCipher | None = field(default=None, repr=False)
    reports: ReportCache = field(init=False, repr=False)
    outage: OutageLog = field(init=False, repr=False)  # logs a database outage once
    # given each session factory as it is made (after a fork too): create_app sends the outbox
    # at commit through it
    on_new_factory: Callable[[sessionmaker[Session]], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.reports = ReportCache(self.settings.report_cache_s)
        self.outage = OutageLog(database_label(self.settings.database_url))

    @property
    def engine(self) -> Engine:
        """This process's engine, created on first use and again after a fork."""
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)  # the parent's connections stay the parent's
            self._engine = make_engine(self.settings.database_url)
            self._factory = make_session_factory(self._engine)
            self.outage.watch(self._engine)
            if self.on_new_factory is not None:
                self.on_new_factory(self._factory)
            self._pid = os.getpid()
        return self._engine

    @property
    def dsn_cipher(self) -> DsnCipher:
        """Encrypts and decrypts stored DSNs with keys derived from the secret key(s)."""
        if self._cipher is None:
            previous = [self.settings.secret_key_previous]
            self._cipher = DsnCipher.from_secret_keys(secret_key(self.settings), previous)
        return self._cipher

    def probe_context(self) -> ProbeContext:
        """What probes need: data sources (settings and stored ones) and the SQL row limit."""
        from rulewatch.services.datasources import usable_datasources

        with self.factory() as session:
            sources, faults = usable_datasources(
                session, self.settings.datasources, self.dsn_cipher
            )
        return ProbeContext(
            datasources=sources, datasource_faults=faults, sql_row_limit=self.settings.sql_row_limit
        )

    @property
    def factory(self) -> sessionmaker[Session]:
        """This process's session factory."""
        _ = self.engine
        assert self._factory is not None
        return self._factory
