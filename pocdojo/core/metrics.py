"""Prometheus metrics, one registry per application so tests can build many apps."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class HttpMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram


def http_metrics() -> HttpMetrics:
    """Requests by route and status, and a latency histogram by route."""
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
    )
