"""GET /metrics: the whole deployment's figures in the Prometheus text format.

Figures come from the database at scrape time (``services.metrics``), so any web process
answers for every worker. A process shares one collection among its threads for CACHE_S
seconds. With RULEWATCH_METRICS_TOKEN set, a scrape must send ``Authorization: Bearer`` it.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterable

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from rulewatch.models import utcnow
from rulewatch.outage import database_unavailable
from rulewatch.runtime import Runtime
from rulewatch.services.metrics import (
    DeploymentFigures,
    Histogram,
    RollupSums,
    deployment_figures,
)
from rulewatch.web.common import rt
from rulewatch.web.database_down import unavailable_message

CACHE_S = 5.0
COLLECTOR = "rulewatch_metrics"
RESETS = (
    " It drops when a rule is deleted or retention prunes daily rollups"
    " (RULEWATCH_DAILY_RETENTION_DAYS); Prometheus reads a drop as a counter reset."
)

metrics = Blueprint("metrics", __name__)


class DeploymentCollector(Collector):
    """Metric families read from the database, kept ``ttl_s`` seconds for the process's threads."""

    def __init__(self, runtime: Runtime, ttl_s: float = CACHE_S) -> None:
        self.runtime, self.ttl_s = runtime, ttl_s
        self.sums = RollupSums()
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._collected_at = float("-inf")

    def collect(self) -> Iterable[Metric]:
        """The cached families if younger than ``ttl_s``, else freshly read ones."""
        with self._lock:  # one collection at a time; concurrent scrapes wait for it
            if time.monotonic() - self._collected_at >= self.ttl_s:
                with self.runtime.factory() as session:
                    self._families = families(deployment_figures(session, utcnow(), self.sums))
                self._collected_at = time.monotonic()
            return list(self._families)


def families(figures: DeploymentFigures) -> list[Metric]:
    """The Prometheus metric families of ``figures``."""
    verifications = CounterMetricFamily(
        "rulewatch_verifications",
        "Verifications recorded, by rule kind and status, from the daily rollups." + RESETS,
        labels=["kind", "status"],
    )
    duration = HistogramMetricFamily(
        "rulewatch_check_duration_seconds",
        "Time a check took (the probe), every verification, from the daily rollups." + RESETS,
        labels=["kind"],
    )
    lag = HistogramMetricFamily(
        "rulewatch_schedule_lag_seconds",
        "How late scheduled verifications started (started_at - scheduled_for), from the"
        " daily rollups." + RESETS,
        labels=["kind"],
    )
    for kind in figures.kinds:
        for status, count in kind.verifications.items():
            verifications.add_metric([kind.kind, status], count)
        duration.add_metric([kind.kind], _buckets(kind.duration), kind.duration.sum_s)
        lag.add_metric([kind.kind], _buckets(kind.lag), kind.lag.sum_s)
    redispatched = CounterMetricFamily(
        "rulewatch_redispatched",
        "Due runs dispatched again because their claim expired (a lost message, a worker"
        " killed mid-check) or was given back by a run that gave up. It drops when a rule is"
        " deleted; Prometheus reads a drop as a counter reset.",
        value=figures.redispatched,
    )
    gap_note = (
        " A gap is a time a rule went unverified because the monitor could not run it"
        " (database, broker or workers down, or overloaded); it counts in no rate. It drops"
        " when a rule is deleted or retention prunes old gaps; Prometheus reads a drop as a"
        " counter reset."
    )
    gaps = CounterMetricFamily(
        "rulewatch_monitor_gaps", "Monitor gaps recorded." + gap_note, value=figures.gaps[0]
    )
    gap_seconds = CounterMetricFamily(
        "rulewatch_monitor_gap_seconds",
        "Seconds rules spent in monitor gaps." + gap_note,
        value=figures.gaps[1],
    )
    return [verifications, duration, lag, redispatched, gaps, gap_seconds, *_gauges(figures)]


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    bounds = zip(histogram.bounds_s, histogram.cumulative, strict=True)
    # repr of a float is what prometheus_client writes for its own bounds: 0.05, 1.0, 300.0
    return [(repr(b), float(c)) for b, c in bounds] + [("+Inf", float(histogram.count))]


def _gauges(figures: DeploymentFigures) -> list[Metric]:
    rules = GaugeMetricFamily("rulewatch_rules", "Rules, enabled or not.", labels=["state"])
    for state, count in figures.rules.items():
        rules.add_metric([state], count)
    incidents = GaugeMetricFamily(
        "rulewatch_incidents_open", "Incidents open (not resolved).", value=figures.incidents_open
    )
    notifications = GaugeMetricFamily(
        "rulewatch_notifications", "Notifications in the outbox, by status.", labels=["status"]
    )
    for status, count in figures.notifications.items():
        notifications.add_metric([status], count)
    return [rules, incidents, notifications]


@metrics.record_once
def _add_collector(state: BlueprintSetupState) -> None:
    state.app.extensions[COLLECTOR] = DeploymentCollector(state.app.extensions["rulewatch"])


@metrics.get("/metrics")
def scrape() -> Response:
    """Every figure, for Prometheus (or OpenMetrics when the scraper asks for it)."""
    runtime = rt()
    token = runtime.settings.metrics_token
    if token and not _bearer_is(request.headers.get("Authorization", ""), token):
        return Response(
            "send Authorization: Bearer <RULEWATCH_METRICS_TOKEN> (the scrape job's"
            " authorization.credentials in Prometheus)\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="rulewatch metrics"'},
            mimetype="text/plain",
        )
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encode(current_app.extensions[COLLECTOR])
    except SQLAlchemyError as exc:  # scraped as down, with the reason
        message = (
            unavailable_message(exc)
            if database_unavailable(exc)
            else f"the database did not answer: {type(exc).__name__}"
        )
        return Response(message + "\n", 503, mimetype="text/plain")
    return Response(body, 200, content_type=content_type)


def _bearer_is(header: str, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>``, compared in constant time."""
    scheme, _, given = header.strip().partition(" ")
    digest = hashlib.sha256(given.strip().encode()).digest()
    expected = hashlib.sha256(token.encode()).digest()
    return scheme.lower() == "bearer" and hmac.compare_digest(digest, expected)
