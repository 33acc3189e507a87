"""Settings from RULEWATCH_* environment variables, with defaults that run on one machine."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

QUEUES = ("scheduler", "checks", "interactive", "reports", "alerts")
MIN_SECRET_KEY = 32


class ConfigError(ValueError):
    """A setting is present but unusable; the message names the variable."""


@dataclass(frozen=True)
class SmtpSettings:
    """How alert emails leave: RULEWATCH_SMTP_*; no host means nothing is sent (and said so)."""

    host: str = ""
    port: int = 25
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False
    ssl: bool = False
    sender: str = "rulewatch@localhost"
    timeout_s: float = 30.0
    # a sender holds a row this long; one that dies mid-send leaves it to be sent again after
    lease_s: float = 120.0


@dataclass(frozen=True)
class AlertDefaults:
    """Alert policy for rules that set none: RULEWATCH_ALERT_*."""

    emails: tuple[str, ...] = ()
    failure_threshold: int = 3
    success_threshold: int = 2
    send_on_resolved: bool = True
    reminder_interval_s: int = 0
    # alerts of one tick wait this long for the rest of the tick's batches, then go as one
    group_wait_s: float = 10.0


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one rulewatch deployment."""

    home: Path
    database_url: str
    broker_url: str
    result_backend: str
    datasources: Mapping[str, str] = field(default_factory=dict)
    tick_s: float = 1.0
    chunk_size: int = 500
    claim_batch: int = 1000
    claim_ttl_s: float = 60.0
    retention_days: int = 14
    keep_per_rule: int = 500
    hourly_retention_days: int = 90
    daily_retention_days: int = 730
    sql_row_limit: int = 1000
    report_cache_s: float = 30.0
    base_url: str = "http://127.0.0.1:5000"
    smtp: SmtpSettings = field(default_factory=lambda: SmtpSettings())
    alerts: AlertDefaults = field(default_factory=lambda: AlertDefaults())
    digest_cron: str = ""  # "m h dom mon dow" in digest_timezone; empty: no digest
    digest_timezone: str = "UTC"
    digest_emails: tuple[str, ...] = ()
    digest_window: str = "7d"
    # signs session cookies; empty: the one kept in home/secret_key (see secret_key())
    secret_key: str = field(default="", repr=False)
    # a key being rotated out: still accepted for session cookies and data source DSNs
    secret_key_previous: str = field(default="", repr=False)
    # the first admin's password for `rulewatch up`; empty: a random one, printed once
    admin_password: str = field(default="", repr=False)
    # what a /metrics scrape must send as its bearer token; empty: /metrics is open
    metrics_token: str = field(default="", repr=False)

    @property
    def embedded_broker(self) -> bool:
        """True when the broker is the kombu filesystem transport under ``home``."""
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        """Folder the embedded broker keeps its messages in."""
        return self.home / "broker"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    home = Path(env.get("RULEWATCH_HOME") or Path.home() / ".rulewatch").expanduser()
    return Settings(
        home=home,
        database_url=env.get("RULEWATCH_DATABASE_URL") or f"sqlite:///{home / 'rulewatch.db'}",
        broker_url=env.get("RULEWATCH_BROKER_URL") or "filesystem://",
        result_backend=env.get("RULEWATCH_RESULT_BACKEND") or _default_result_backend(env, home),
        datasources=_datasources(env.get("RULEWATCH_DATASOURCES", "")),
        tick_s=_number(env, "RULEWATCH_TICK_S", 1.0, minimum=0.2),
        chunk_size=int(_number(env, "RULEWATCH_CHUNK_SIZE", 500, minimum=1)),
        claim_batch=int(_number(env, "RULEWATCH_CLAIM_BATCH", 1000, minimum=1)),
        claim_ttl_s=_number(env, "RULEWATCH_CLAIM_TTL_S", 60.0, minimum=1),
        retention_days=int(_number(env, "RULEWATCH_RETENTION_DAYS", 14, minimum=1)),
        hourly_retention_days=int(_number(env, "RULEWATCH_HOURLY_RETENTION_DAYS", 90, minimum=31)),
        daily_retention_days=int(_number(env, "RULEWATCH_DAILY_RETENTION_DAYS", 730, minimum=366)),
        keep_per_rule=int(_number(env, "RULEWATCH_KEEP_PER_RULE", 500, minimum=10)),
        report_cache_s=_number(env, "RULEWATCH_REPORT_CACHE_S", 30.0, minimum=0),
        sql_row_limit=int(_number(env, "RULEWATCH_SQL_ROW_LIMIT", 1000, minimum=1)),
        base_url=env.get("RULEWATCH_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        smtp=_smtp(env),
        alerts=_alerts(env),
        digest_cron=env.get("RULEWATCH_DIGEST_CRON", "").strip(),
        digest_timezone=_zone(env.get("RULEWATCH_DIGEST_TIMEZONE", "UTC")),
        digest_emails=_emails(env.get("RULEWATCH_DIGEST_EMAILS", "")),
        digest_window=env.get("RULEWATCH_DIGEST_WINDOW", "7d"),
        secret_key=_secret_key(env.get("RULEWATCH_SECRET_KEY", "")),
        secret_key_previous=_secret_key(
            env.get("RULEWATCH_SECRET_KEY_PREVIOUS", ""), "RULEWATCH_SECRET_KEY_PREVIOUS"
        ),
        admin_password=env.get("RULEWATCH_ADMIN_PASSWORD", ""),
        metrics_token=env.get("RULEWATCH_METRICS_TOKEN", "").strip(),
    )


def secret_key(settings: Settings) -> str:
    """RULEWATCH_SECRET_KEY, or the key kept in home/secret_key, made (mode 0600) on first use.

    Kept in a file so that sessions survive a restart; every process of one home reads the
    same key. Deployments with several web machines set RULEWATCH_SECRET_KEY on each.
    """
    if settings.secret_key:
        return settings.secret_key
    path = settings.home / "secret_key"
    if not path.exists():
        _write_secret_key(path)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY:
        raise ConfigError(
            f"{path} holds no usable secret key: delete it (a new one is made; sessions end)"
            " or set RULEWATCH_SECRET_KEY"
        )
    return key


def _write_secret_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".secret_key.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(48) + "\n")
    try:
        # a link appears whole or not at all, so a process starting alongside never reads
        # half a key; if another process linked its key first, that one is the key
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink()


def _secret_key(raw: str, name: str = "RULEWATCH_SECRET_KEY") -> str:
    if raw and len(raw) < MIN_SECRET_KEY:
        raise ConfigError(
            f"{name} must be at least {MIN_SECRET_KEY} characters; make one with"
            " python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return raw


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"RULEWATCH_DIGEST_TIMEZONE={name!r} is not a known time zone (like Europe/Berlin)"
        ) from None
    return name


def _emails(raw: str) -> tuple[str, ...]:
    return tuple(e.strip() for e in raw.split(",") if e.strip())


def _alerts(env: Mapping[str, str]) -> AlertDefaults:
    emails = _emails(env.get("RULEWATCH_ALERT_EMAILS", ""))
    return AlertDefaults(
        emails=emails,
        failure_threshold=int(_number(env, "RULEWATCH_ALERT_FAILURE_THRESHOLD", 3, minimum=1)),
        success_threshold=int(_number(env, "RULEWATCH_ALERT_SUCCESS_THRESHOLD", 2, minimum=1)),
        send_on_resolved=_flag(env, "RULEWATCH_ALERT_SEND_ON_RESOLVED", default=True),
        reminder_interval_s=_reminder(env),
        group_wait_s=_number(env, "RULEWATCH_ALERT_GROUP_WAIT_S", 10.0, minimum=0),
    )


def _reminder(env: Mapping[str, str]) -> int:
    value = int(_number(env, "RULEWATCH_ALERT_REMINDER_INTERVAL_S", 0, minimum=0))
    if 0 < value < 60:
        raise ConfigError("RULEWATCH_ALERT_REMINDER_INTERVAL_S must be 0 (off) or at least 60")
    return value


def _smtp(env: Mapping[str, str]) -> SmtpSettings:
    ssl = _flag(env, "RULEWATCH_SMTP_SSL")
    timeout_s = _number(env, "RULEWATCH_SMTP_TIMEOUT_S", 30.0, minimum=1)
    smtp = SmtpSettings(
        host=env.get("RULEWATCH_SMTP_HOST", ""),
        port=int(_number(env, "RULEWATCH_SMTP_PORT", 465 if ssl else 25, minimum=1)),
        username=env.get("RULEWATCH_SMTP_USERNAME", ""),
        password=env.get("RULEWATCH_SMTP_PASSWORD", ""),
        starttls=_flag(env, "RULEWATCH_SMTP_STARTTLS"),
        ssl=ssl,
        sender=env.get("RULEWATCH_SMTP_FROM", "rulewatch@localhost"),
        timeout_s=timeout_s,
        lease_s=_number(env, "RULEWATCH_SMTP_LEASE_S", max(120.0, 4 * timeout_s), minimum=1),
    )
    if smtp.lease_s <= 2 * smtp.timeout_s:
        raise ConfigError(
            f"RULEWATCH_SMTP_LEASE_S={smtp.lease_s:g} must be more than twice"
            f" RULEWATCH_SMTP_TIMEOUT_S={smtp.timeout_s:g}, or a slow send could be sent twice"
        )
    return smtp


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} is not a yes/no value (use true or false)")


def _default_result_backend(env: Mapping[str, str], home: Path) -> str:
    broker = env.get("RULEWATCH_BROKER_URL", "")
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return f"db+sqlite:///{home / 'results.db'}"


def _datasources(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"RULEWATCH_DATASOURCES is not valid JSON (line {exc.lineno}, column {exc.colno}):"
            ' expected an object like {"warehouse": "postgresql://..."}'
        ) from None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise ConfigError("RULEWATCH_DATASOURCES must be a JSON object of name to DSN strings")
    return parsed


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value
