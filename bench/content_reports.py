"""Report benchmark: build and render a large report in every format, in-process.

What it measures: for ``--pocs`` generated POCs (default 10,000), the time to aggregate them
into a ``--type`` report (default ``detailed``, one table row per POC) on its own, then, per
format, the time to build and render that report into a file, and the file's size. The
aggregation line is the reference: a format's render time is its total minus that. Each
figure is the median of ``--repeat`` runs, after one small warm-up render per format (so
one-time costs such as loading the PDF font are not counted). No database: the POCs are
generated from a fixed seed, with skewed languages, Zipf-distributed tags, a dozen owners and
some non-Latin titles, so text measuring and font subsetting get real work.

Run it from the repository root::

    .venv/bin/python bench/content_reports.py
    .venv/bin/python bench/content_reports.py --pocs 50000 --type analytics --repeat 3

``run_report_bench`` is importable without side effects, for a caller that gathers several
benchmarks into one report.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pocdojo.core.languages import LANGUAGES
from pocdojo.jobs.reporting import EXTENSIONS, FORMATS, RENDERERS, ReportPoc, ReportRequest
from pocdojo.jobs.reporting.model import REPORT_TYPES, Report, build_report
from pocdojo.jobs.reporting.pdf_fonts import default_fonts

SEED = 20240101
START = date(2024, 1, 1)
END = date(2024, 12, 31)

_WORDS = (
    "Kafka", "Redis", "PostgreSQL", "GraphQL", "gRPC", "Kubernetes", "WebSocket", "CRDT",
    "rate limiter", "circuit breaker", "outbox", "vector search", "feature flags", "sharding",
    "exporter", "gateway", "sidecar", "prototype", "dashboard", "connector", "benchmark",
)  # fmt: skip
_UNICODE_TITLES = ("Zoë's façade", "Ζήτω CRDT", "Привет Kafka", "東京 latency", "naïve cache")
_TAGS = (
    *("api", "backend", "performance", "security", "devops", "ml", "cloud", "déjà-vu"),
    *(f"topic-{i:03d}" for i in range(200)),
)
_TAG_WEIGHTS = [1 / rank for rank in range(1, len(_TAGS) + 1)]
_LANGUAGE_WEIGHTS = [20 if name in ("Python", "TypeScript", "Go") else 1 for name in LANGUAGES]


def make_pocs(n: int, seed: int = SEED) -> list[ReportPoc]:
    """``n`` POCs created over 2024 by twelve owners; the same seed gives the same POCs."""
    rng = random.Random(seed)
    owners = [(uuid.UUID(int=rng.getrandbits(128)), f"Owner {i:02d}") for i in range(12)]
    seconds = int((END - START).total_seconds()) + 86_400
    begin = datetime.combine(START, datetime.min.time(), UTC)
    pocs = []
    for i in range(n):
        owner_id, owner_name = rng.choice(owners)
        words = rng.sample(_WORDS, 3)
        title = " ".join(words) if i % 20 else f"{rng.choice(_UNICODE_TITLES)} {words[0]}"
        pocs.append(
            ReportPoc(
                poc_id=uuid.UUID(int=rng.getrandbits(128)),
                title=f"{title} #{i}",
                language=rng.choices(LANGUAGES, weights=_LANGUAGE_WEIGHTS)[0],
                tags=tuple(dict.fromkeys(rng.choices(_TAGS, weights=_TAG_WEIGHTS, k=4))),
                owner_id=owner_id,
                owner_name=owner_name,
                status="archived" if rng.random() < 0.15 else "active",
                created_at=begin + timedelta(seconds=rng.randrange(seconds)),
                views=int(rng.paretovariate(1.2) * 20),
                favorites=rng.randrange(60),
            )
        )
    return pocs


def _request(report_type: str) -> ReportRequest:
    return ReportRequest(
        report_type=report_type,  # type: ignore[arg-type]
        start=START,
        end=END,
        language=None,
        tags=(),
        user_id=None,
        tenant_name="Benchmark tenant",
        requested_by="bench",
        generated_at=datetime.now(UTC),
    )


def _timed_build(request: ReportRequest, pocs: Sequence[ReportPoc]) -> tuple[Report, float]:
    started = time.perf_counter()
    report = build_report(request, pocs)
    return report, time.perf_counter() - started


def run_report_bench(
    n: int = 10_000,
    *,
    report_type: str = "detailed",
    formats: Sequence[str] = FORMATS,
    repeat: int = 3,
) -> list[dict[str, Any]]:
    """Time building an ``n``-POC report alone, then building and rendering it per format.

    Args:
        n: how many POCs.
        report_type: one of summary, detailed, analytics, usage.
        formats: the formats to render.
        repeat: runs per measurement; each figure is their median.

    Returns:
        One dict per line: ``format`` ("build only" for the reference), ``pocs``,
        ``report_type``, ``build_s``, ``render_s``, ``total_s``, ``bytes`` (None for the
        reference) and ``repeat``.
    """
    if report_type not in REPORT_TYPES:
        raise ValueError(f"unknown report type {report_type!r}")
    pocs = make_pocs(n)
    request = _request(report_type)
    _warm_up(request, formats)
    builds = [_timed_build(request, pocs)[1] for _ in range(repeat)]
    results = [_row("build only", n, report_type, builds, [0.0] * repeat, None, repeat)]
    with tempfile.TemporaryDirectory(prefix="pocdojo-report-bench-") as tmp:
        for fmt in formats:
            path = Path(tmp) / f"report.{EXTENSIONS[fmt]}"
            build_times, render_times = [], []
            for _ in range(repeat):
                report, built = _timed_build(request, pocs)
                started = time.perf_counter()
                RENDERERS[fmt](report, path)
                render_times.append(time.perf_counter() - started)
                build_times.append(built)
            size = path.stat().st_size
            results.append(_row(fmt, n, report_type, build_times, render_times, size, repeat))
    return results


def _warm_up(request: ReportRequest, formats: Sequence[str]) -> None:
    """Render a small report once per format, so one-time costs (imports of lazily loaded
    modules, parsing the PDF font) are not counted in the figures."""
    report = build_report(request, make_pocs(50, seed=SEED + 1))
    for fmt in formats:
        RENDERERS[fmt](report, io.BytesIO())


def _row(
    fmt: str,
    n: int,
    report_type: str,
    builds: list[float],
    renders: list[float],
    size: int | None,
    repeat: int,
) -> dict[str, Any]:
    totals = [b + r for b, r in zip(builds, renders, strict=True)]
    return {
        "format": fmt,
        "pocs": n,
        "report_type": report_type,
        "build_s": statistics.median(builds),
        "render_s": statistics.median(renders),
        "total_s": statistics.median(totals),
        "bytes": size,
        "repeat": repeat,
    }


def format_results(results: Sequence[dict[str, Any]]) -> str:
    """The results as an aligned text table."""
    lines = [f"{'format':<12}{'build s':>9}{'render s':>10}{'total s':>9}{'size':>12}"]
    for r in results:
        size = f"{r['bytes'] / 1024:,.0f} KiB" if r["bytes"] is not None else "-"
        lines.append(
            f"{r['format']:<12}{r['build_s']:>9.3f}{r['render_s']:>10.3f}"
            f"{r['total_s']:>9.3f}{size:>12}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pocs", type=int, default=10_000, help="POCs in the report")
    parser.add_argument("--type", default="detailed", choices=REPORT_TYPES, dest="report_type")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    options = parser.parse_args(argv)
    print(
        f"{options.report_type} report of {options.pocs:,} POCs, median of {options.repeat} "
        f"run(s); Python {platform.python_version()}, {os.cpu_count()} CPU(s), "
        f"PDF font {default_fonts().regular}"
    )
    results = run_report_bench(
        options.pocs,
        report_type=options.report_type,
        formats=options.formats,
        repeat=options.repeat,
    )
    print(format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
