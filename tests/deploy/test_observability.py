"""The alert rules and the dashboard: promtool accepts the rules and their unit tests pass,
and every metric they query is one pocdojo registers (read from a running application's
registry and from the worker's)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from pocdojo.core import appkeys
from pocdojo.jobs.runtime import JobMetrics

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
# Series Prometheus itself writes for every scrape target.
FROM_PROMETHEUS = {"up"}
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (enough PromQL for our expressions)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
    )  # grouping labels
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue  # a function or an aggregation
        names.add(match.group())
    return names


def exposed(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's metrics expose."""
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SAMPLE_SUFFIXES[family.type]
    }


@pytest.fixture
async def registered(client: TestClient[Any, Any]) -> set[str]:
    """What a started server (its rooms included) and a worker register."""
    return exposed(client.app[appkeys.metrics_key].registry) | exposed(_worker_registry())


def _worker_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    JobMetrics(registry)
    return registry


def alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", variable["definition"])
            expressions.append(query)
    return expressions


def test_the_expression_reader_finds_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{route=~"/a|b"}[5m])))'
        " / ignoring(le) y_total offset 5m > 1e3 and on(job) deriv(max(z)[30m:1m]) > 0"
        ' or up{job="p"} == bool 512 * 1024'
    )
    assert metric_names(expr) == {"x_bucket", "y_total", "z", "up"}


async def test_every_metric_an_alert_uses_is_registered(registered: set[str]) -> None:
    assert "pocdojo_fanout_latency_seconds_bucket" in registered  # the rooms' metrics too
    assert "pocdojo_persist_lag_seconds_bucket" in registered
    for alert, expr in alert_expressions().items():
        unknown = metric_names(expr) - registered - FROM_PROMETHEUS
        assert not unknown, f"{alert} uses metrics pocdojo does not register: {unknown}"
        assert metric_names(expr), alert


async def test_every_metric_the_dashboard_queries_is_registered(registered: set[str]) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    used = set()
    for expr in expressions:
        names = metric_names(expr)
        assert names, expr
        unknown = names - registered
        assert not unknown, f"the dashboard queries unregistered metrics {unknown}: {expr}"
        used |= names
    wanted = {
        "pocdojo_rooms_active",
        "pocdojo_ws_connections",
        "pocdojo_fanout_latency_seconds_bucket",
        "pocdojo_persist_lag_seconds_bucket",
        "pocdojo_job_queue_depth",
        "pocdojo_http_request_duration_seconds_bucket",
        "pocdojo_http_requests_total",
    }
    assert wanted <= used, wanted - used


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            refs = [target["refId"] for target in panel["targets"]]
            assert refs, panel["title"]
            assert len(refs) == len(set(refs)), panel["title"]


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    return promtool


@pytest.mark.parametrize(
    "arguments",
    [
        ["check", "rules", str(OBSERVABILITY / "alerts.yaml")],
        ["check", "config", str(OBSERVABILITY / "prometheus.yml")],
        ["test", "rules", str(UNIT_TESTS)],
    ],
    ids=["check-rules", "check-config", "rule-unit-tests"],
)
def test_promtool(arguments: list[str]) -> None:
    result = subprocess.run(
        [_promtool(), *arguments], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
