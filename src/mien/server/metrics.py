"""Prometheus metrics of one replica (``GET /metrics``): connected agents, activations by
status, instances, request latency, long-poll outcomes.

Each app gets its own registry, so several servers in one process (tests) do not clash.
Prometheus sums the per-replica series; the database-derived gauges (activations,
instances) are the same on every replica, so take their ``max``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, connected: Callable[[], float], resolutions: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.db_refreshed_at = 0.0  # when the database-derived gauges were last read
        self.agents_connected = Gauge(
            "mien_agents_connected",
            "Agents holding a long-poll open on this replica",
            registry=self.registry,
        )
        self.agents_connected.set_function(connected)
        self.activations = Gauge(
            "mien_activations", "Activation records by status", ["status"], registry=self.registry
        )
        self.instances = Gauge("mien_instances", "Enrolled instances", registry=self.registry)
        self.latency = Histogram(
            "mien_http_request_duration_seconds",
            "Time to answer a request (long-polls included, under their own route)",
            ["method", "route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.longpolls = Counter(
            "mien_longpoll_responses_total",
            "Answers to /agent/desired: changed, unchanged (timeout) or shutdown",
            ["result"],
            registry=self.registry,
        )
        self.resolutions = Gauge(
            "mien_resolutions",
            "Effective personas composed since start (once per distinct desired state)",
            registry=self.registry,
        )
        self.resolutions.set_function(resolutions)
        self.fleet_metric = Gauge(
            "mien_fleet_metric",
            "Average of the newest value each instance reported (within the last 5 "
            "minutes), by applied persona; only the metrics of "
            "mien.server.telemetry.FLEET_GAUGES",
            ["persona", "metric"],
            registry=self.registry,
        )
        self.fleet_metric_instances = Gauge(
            "mien_fleet_metric_instances",
            "Instances behind each mien_fleet_metric average",
            ["persona", "metric"],
            registry=self.registry,
        )
        self.fleet_metric_by_tag = Gauge(
            "mien_fleet_metric_by_tag",
            "Average of the newest value each instance reported (within the last 5 "
            "minutes), by the value of one tag (the keys of the metrics_tag_keys setting)",
            ["tag", "value", "metric"],
            registry=self.registry,
        )
        self.fleet_metric_by_tag_instances = Gauge(
            "mien_fleet_metric_by_tag_instances",
            "Instances behind each mien_fleet_metric_by_tag average",
            ["tag", "value", "metric"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LatencyMiddleware:
    """Times every request by its route template (``/api/v1/personas/{name}``)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None], prefix: str) -> None:
        self.app = app
        self.metrics = metrics
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                route: Any = scope.get("route")
                path = getattr(route, "path", None) or "(unmatched)"
                # Routes of an included router may carry their path without its prefix
                # (depending on the FastAPI version): label with the full template.
                if (
                    path.startswith("/")
                    and not path.startswith(self.prefix)
                    and scope["path"].startswith(self.prefix + "/")
                ):
                    path = self.prefix + path
                metrics.latency.labels(scope["method"], path, str(status[0])).observe(
                    time.perf_counter() - start
                )
