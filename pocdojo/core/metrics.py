"""Prometheus metrics, one registry per application so tests can build many apps."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class HttpMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    dependency_up: Gauge
    queue_depth: Gauge


def http_metrics() -> HttpMetrics:
    """Requests by route and status, a latency histogram by route, and the engines' state.

    The engines' gauges are set at each scrape of ``/metrics`` (and each ``/readyz``), so an
    alert on them needs nothing but the server's own metrics.
    """
    registry = CollectorRegistry()
    return HttpMetrics(
        registry=registry,
        requests=Counter(
            "pocdojo_http_requests",
            "HTTP requests served, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "pocdojo_http_request_duration_seconds",
            "HTTP request latency, by method and route template",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        ),
        dependency_up=Gauge(
            "pocdojo_dependency_up",
            "1 when the engine answered this node's last probe within 2 s, 0 otherwise",
            ["dependency"],
            registry=registry,
        ),
        queue_depth=Gauge(
            "pocdojo_job_queue_depth",
            "Jobs due on the arq queue (waiting or running), as of the last scrape",
            registry=registry,
        ),
    )
