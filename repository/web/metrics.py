"""Prometheus metrics of one worker, served at ``/metrics`` (``prometheus_client``).

- ``dicom_repo_http_requests_total{route,method,status}`` and
  ``dicom_repo_http_request_duration_seconds{route,method}`` (a histogram; ``route`` is the
  route's path template, so UIDs never become labels);
- ``dicom_repo_db_pool_connections_in_use``, ``dicom_repo_db_slots_in_use``,
  ``dicom_repo_db_slots_waiting``, ``dicom_repo_db_slots_refused_total`` (see
  :mod:`.admission`), ``dicom_repo_db_up`` (0 during an outage, see :mod:`.availability`);
- ``dicom_repo_metadata_instances_total{json="kept|built"}``: instances of WADO-RS metadata
  answers whose DICOM JSON was read as kept or built (kept-JSON hits, :mod:`.metadata_cache`);
- ``dicom_repo_change_feed_lag``: changes committed but not yet sent to the slowest open
  ``/changes/stream`` (0 without one).

Each worker process has its own registry: with several workers, ``/metrics`` answers for the
worker that took the request (named by ``X-Dicom-Repo-Worker`` and the ``worker`` metric).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The registry of one application, and the metrics the server code updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("dicom_repo_http_requests", "HTTP requests answered.",
                                ["route", "method", "status"], registry=self.registry)  # fmt: skip
        self.latency = Histogram(
            "dicom_repo_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.metadata = Counter("dicom_repo_metadata_instances", "Instances in WADO-RS metadata "
                                "answers, by where their DICOM JSON came from.", ["json"],
                                registry=self.registry)  # fmt: skip
        Gauge("dicom_repo_worker", "This worker's process id.", registry=self.registry).set(
            os.getpid()
        )

    def watch(self, app_state: Any) -> None:
        """Report the pool, slots, database state and feed lag of ``app_state`` when scraped."""
        self.registry.register(_StateCollector(app_state))

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self.state
        slots, store = getattr(state, "slots", None), getattr(state, "store", None)
        if store is not None:
            checked_out = getattr(store.engine.pool, "checkedout", lambda: 0)()
            yield _gauge("dicom_repo_db_pool_connections_in_use",
                         "Database connections of this worker in use.", checked_out)  # fmt: skip
        if slots is not None:
            yield _gauge("dicom_repo_db_slots_in_use", "Database slots held.", slots.in_use)
            yield _gauge("dicom_repo_db_slots_waiting",
                         "Requests waiting for a database slot.", slots.waiting)  # fmt: skip
            yield _gauge("dicom_repo_db_slots_refused_total",
                         "Requests answered 503 for want of a slot.", slots.refused)  # fmt: skip
        database = getattr(state, "database", None)
        if database is not None:
            yield _gauge("dicom_repo_db_up", "0 while this worker finds the database "
                         "unreachable.", 0 if database.down else 1)  # fmt: skip
        feed = getattr(state, "feed_positions", None)
        if feed is not None:
            lag = feed.lag(store.engine) if store is not None else 0.0
            yield _gauge("dicom_repo_change_feed_lag", "Changes committed but not yet sent "
                         "to the slowest change stream.", lag)  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status[0])).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: this worker's metrics in Prometheus' text format."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)
