"""Celery wiring: queues, routes, reliability settings, beat schedule, all in one place.

What to queue, how urgently and for how long is decided in `rulewatch.dispatch`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask
from kombu import Queue

from rulewatch.config import QUEUES, ConfigError, Settings

ROUTES = {
    "rulewatch.verify_all_rules": {"queue": "scheduler"},
    "rulewatch.prune": {"queue": "scheduler"},
    "rulewatch.verify": {"queue": "checks"},
    "rulewatch.verify_batch": {"queue": "checks"},
    "rulewatch.try_rule": {"queue": "interactive"},
    "rulewatch.get_stable_rates_html": {"queue": "reports"},
    "rulewatch.send_notification": {"queue": "alerts"},
    "rulewatch.digest": {"queue": "reports"},
    "rulewatch.queue_digest": {"queue": "alerts"},
}
EMBEDDED_TRANSPORT = "rulewatch.embedded_broker:Transport"
MAX_PRIORITY = 9  # queues declare it; dispatch.priority chooses within it
# RabbitMQ closes the channel of a consumer that holds a message unacknowledged longer than
# its consumer timeout (30 min by default). A worker holds a delayed task until its countdown
# ends (up to 55 min from the API) and acknowledges it late, once run: ask for two hours
# (RabbitMQ 3.11.15 and later honour it per consumer; older servers need it in rabbitmq.conf)
CONSUMER_TIMEOUT_S = 2 * 3600
# Beat's sends store no result: nobody reads a tick's, and a send that asks for one makes
# the Redis result backend subscribe beat to its result channel, whose reconnect after a
# broker restart can end in "The Celery application must be restarted" although beat
# recovers by itself at its next send.
NO_RESULT = {"ignore_result": True}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from rulewatch settings."""
    return {
        "broker_url": settings.broker_url,
        # kombu's filesystem transport, hardened: atomic writes, unreadable files set aside
        "broker_transport": EMBEDDED_TRANSPORT if settings.embedded_broker else None,
        "result_backend": settings.result_backend,
        "broker_transport_options": _transport_options(settings),
        # a broker away (at start or later) is waited for, never a reason to exit: retry
        # connecting for ever (Celery's default gives up after 100 tries)
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        "broker_channel_error_retry": True,
        "task_queues": [_queue(name) for name in QUEUES],
        "task_default_queue": "checks",
        "task_routes": ROUTES,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # a check is only acknowledged once recorded; a worker that dies gives it back
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "result_extended": True,
        "result_expires": 86400,
        "database_engine_options": _result_engine_options(settings),
        "task_default_priority": 3,
        # crontab entries (the digest) read in this zone; messages still carry UTC
        "timezone": settings.digest_timezone,
        "enable_utc": True,
        "worker_enable_remote_control": not settings.embedded_broker,
        "worker_send_task_events": False,
        # Celery's PersistentScheduler, with one log line per broker outage, not one per tick
        "beat_scheduler": "rulewatch.beat_scheduler:QuietScheduler",
        "beat_schedule": {
            "verify-all-rules": {
                "task": "rulewatch.verify_all_rules",
                "schedule": settings.tick_s,
                "options": {"expires": max(settings.tick_s * 2, 10), **NO_RESULT},
            },
            "prune": {
                "task": "rulewatch.prune",
                "schedule": 3600.0,
                "options": {"expires": 3000, **NO_RESULT},
            },
            **_digest_entry(settings),
        },
    }


def _queue(name: str) -> Queue:
    """A rulewatch queue; the arguments matter on RabbitMQ only (Redis ignores them)."""
    timeout_ms = CONSUMER_TIMEOUT_S * 1000
    return Queue(name, routing_key=name, queue_arguments={"x-max-priority": MAX_PRIORITY},
                 consumer_arguments={"x-consumer-timeout": timeout_ms})  # fmt: skip


def _digest_entry(settings: Settings) -> dict[str, Any]:
    """The stability digest on its cron, evaluated in its own timezone (DST included)."""
    if not settings.digest_cron:
        return {}
    fields = settings.digest_cron.split()
    if len(fields) != 5:
        raise ConfigError(
            f"RULEWATCH_DIGEST_CRON={settings.digest_cron!r} needs five fields: "
            "minute hour day-of-month month day-of-week"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    schedule = crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                       month_of_year=month_of_year, day_of_week=day_of_week)  # fmt: skip
    entry = {"task": "rulewatch.digest", "schedule": schedule, "options": NO_RESULT}
    return {"stability-digest": entry}


def _result_engine_options(settings: Settings) -> dict[str, Any]:
    """SQLAlchemy options of a database result backend (``db+...``)."""
    if settings.result_backend.startswith("db+sqlite"):
        # every pool process writes the embedded SQLite results at once: wait for the lock
        return {"connect_args": {"timeout": 30}}
    return {}  # PostgreSQL and MySQL drivers reject a "timeout" connect argument


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded_broker:
        folder = str(settings.broker_folder)
        return {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(settings.broker_folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    return {
        # longer than the longest check plus queueing, so Redis does not redeliver live work
        "visibility_timeout": 3600,
        "priority_steps": list(range(MAX_PRIORITY + 1)),
        "sep": ":",
        "queue_order_strategy": "priority",
    }


def _use_wal(path: str) -> None:
    """Put the SQLite result database in WAL mode (it persists), so readers never block writers."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def celery_init_app(app: Flask, settings: Settings) -> Celery[Any]:
    """Create the Celery app whose tasks run inside the Flask app context."""

    class FlaskTask(Task[Any, Any]):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    if settings.embedded_broker:
        for sub in ("", "control"):
            (settings.broker_folder / sub).mkdir(parents=True, exist_ok=True)
    if settings.result_backend.startswith("db+sqlite:///"):
        _use_wal(settings.result_backend.removeprefix("db+sqlite:///"))
    celery: Celery[Any] = Celery("rulewatch", task_cls=FlaskTask)
    celery.conf.update(celery_config(settings))
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
