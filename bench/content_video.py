"""Yearly video benchmark: render time against encoding the same frames with PyAV alone.

What it measures: for each POC count (default 12, 50 and 200), the wall and CPU time of
``render_yearly_video`` (drawing every still with Pillow, building transitions, converting
and encoding, writing the thumbnail), and the seconds of video it makes per second of
rendering. The reference is the same frame sequence, built beforehand outside the clock in
chunks of about ``--chunk`` frames, then encoded by PyAV with the same x264 settings: only
the encoder is timed, so ``render / encode`` is what drawing and frame building add. The
target is a 50-POC video in under 30 seconds.

POCs come from the shared realistic vocabulary (``_common.PocFactory``) with a fixed seed:
skewed languages, Zipf tags, one to three sentence descriptions, lognormal view counts.

Run it from the repository root::

    .venv/bin/python bench/content_video.py
    .venv/bin/python bench/content_video.py --counts 12 50 --template minimal --out-dir videos

``run_video_bench`` is importable without side effects, for a caller that gathers several
benchmarks into one report.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import PocFactory, pick_language
from PIL import Image

from pocdojo.media.video import FPS, TEMPLATES, VideoPoc, VideoSpec, render_yearly_video
from pocdojo.media.video.encode import Mp4Writer
from pocdojo.media.video.model import segment_frames, year_totals
from pocdojo.media.video.timeline import Run, frame_runs

SEED = 20250101
YEAR = 2025
TARGET_POCS = 50
TARGET_SECONDS = 30.0


def bench_spec(count: int, template: str = "default", include_metrics: bool = True) -> VideoSpec:
    """A spec of ``count`` realistic POCs spread over one year (same seed, same POCs)."""
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    factory = PocFactory(SEED + count, start + timedelta(days=365))
    rng = factory.rng
    pocs = []
    for index in range(count):
        title, tech = factory.title()
        language = pick_language(rng)
        views = int(rng.lognormvariate(3.0, 1.5))
        pocs.append(
            VideoPoc(
                title=title,
                language=language,
                tags=tuple(factory.tags(tech, language)),
                created_at=start + timedelta(days=364 * index / max(count - 1, 1)),
                description=factory.description(tech),
                views=views,
                favorites=int(views * rng.random() ** 3 * 0.1),
            )
        )
    return VideoSpec(
        year=YEAR,
        owner_name="Sam Example",
        company="Bench Industries",
        pocs=tuple(pocs),
        include_metrics=include_metrics,
        template=template,
    )


def _stills(spec: VideoSpec) -> Iterator[Image.Image]:
    """The same stills ``render_yearly_video`` draws, in order."""
    template = TEMPLATES[spec.template]
    yield template.intro(spec)
    for index in range(len(spec.pocs)):
        yield template.card(spec, index)
    yield template.outro(spec, year_totals(spec.pocs))


def _chunks(runs: Iterator[Run], frames: int) -> Iterator[list[Run]]:
    """Runs grouped so each group holds about ``frames`` distinct converted frames."""
    chunk: list[Run] = []
    for run in runs:
        chunk.append(run)
        if len(chunk) >= frames:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Clock:
    """Adds up wall and CPU time over the stretches between ``start`` and ``stop``."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._wall = self._cpu = 0.0

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def encode_only(spec: VideoSpec, path: Path, chunk: int = 120) -> tuple[float, float, int]:
    """Encode ``spec``'s frame sequence, timing only PyAV's work.

    Returns:
        Wall seconds, CPU seconds (all threads) and frames written.
    """
    template = TEMPLATES[spec.template]
    runs = frame_runs(
        _stills(spec), segment_frames(len(spec.pocs)), template.blank(), template.transition
    )
    clock = _Clock()
    clock.start()
    writer = Mp4Writer(path)
    clock.stop()
    with writer:
        for group in _chunks(runs, chunk):  # drawing and converting happen here, off the clock
            clock.start()
            for frame, repeat in group:
                writer.write(frame, repeat)
            clock.stop()
        clock.start()
    clock.stop()  # after the block: the encoder's final flush counts too
    return clock.wall, clock.cpu, writer.frames


def _one(spec: VideoSpec, directory: Path) -> dict[str, Any]:
    count = len(spec.pocs)
    video = directory / f"video-{count}.mp4"
    started, started_cpu = time.perf_counter(), time.process_time()
    result = render_yearly_video(spec, video, directory / f"video-{count}.jpg")
    render_wall = time.perf_counter() - started
    render_cpu = time.process_time() - started_cpu
    size = video.stat().st_size
    encode_wall, encode_cpu, frames = encode_only(spec, directory / f"encode-{count}.mp4")
    assert frames == result.frames, "the reference must encode the same frames"
    return {
        "pocs": count,
        "template": spec.template,
        "frames": result.frames,
        "video_seconds": result.duration_seconds,
        "render_seconds": render_wall,
        "render_cpu_seconds": render_cpu,
        "video_per_render_second": result.duration_seconds / render_wall,
        "encode_only_seconds": encode_wall,
        "encode_only_cpu_seconds": encode_cpu,
        "video_per_encode_second": result.duration_seconds / encode_wall,
        "render_over_encode": render_wall / encode_wall,
        "mp4_bytes": size,
    }


def run_video_bench(
    counts: Sequence[int] = (12, 50, 200),
    out_dir: Path | None = None,
    *,
    template: str = "default",
    include_metrics: bool = True,
) -> list[dict[str, Any]]:
    """Render and encode-only each count once; one result dict per count.

    Args:
        counts: POC counts to render.
        out_dir: Where videos are kept; None for a temporary folder removed afterwards.
        template: A key of ``TEMPLATES``.
        include_metrics: Whether cards show views and favorites.

    Returns:
        Per count: frames, video seconds, render and encode-only wall/CPU seconds, video
        seconds per second of each, their ratio and the MP4 size.
    """
    specs = [bench_spec(count, template, include_metrics) for count in counts]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        return [_one(spec, out_dir) for spec in specs]
    with tempfile.TemporaryDirectory(prefix="video-bench-") as folder:
        return [_one(spec, Path(folder)) for spec in specs]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as a fixed-width table, one line per count."""
    header = (
        f"{'POCs':>5} {'frames':>7} {'video s':>8} │ {'render s':>9} {'cpu s':>7} "
        f"{'video/s':>8} │ {'encode s':>9} {'cpu s':>7} {'video/s':>8} │ {'render/enc':>10} "
        f"{'MB':>6}"
    )
    lines = [header, "─" * len(header)]
    for row in rows:
        lines.append(
            f"{row['pocs']:>5} {row['frames']:>7} {row['video_seconds']:>8.1f} │ "
            f"{row['render_seconds']:>9.2f} {row['render_cpu_seconds']:>7.2f} "
            f"{row['video_per_render_second']:>8.2f} │ "
            f"{row['encode_only_seconds']:>9.2f} {row['encode_only_cpu_seconds']:>7.2f} "
            f"{row['video_per_encode_second']:>8.2f} │ {row['render_over_encode']:>10.2f} "
            f"{row['mp4_bytes'] / 1e6:>6.1f}"
        )
    return "\n".join(lines)


def _target_line(rows: Sequence[dict[str, Any]]) -> str:
    for row in rows:
        if row["pocs"] == TARGET_POCS:
            met = "met" if row["render_seconds"] < TARGET_SECONDS else "MISSED"
            return (
                f"target: {TARGET_POCS} POCs under {TARGET_SECONDS:.0f} s: {met} "
                f"({row['render_seconds']:.1f} s)"
            )
    return f"target: {TARGET_POCS} POCs under {TARGET_SECONDS:.0f} s: not measured"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--counts", type=int, nargs="+", default=[12, 50, 200])
    parser.add_argument("--template", choices=sorted(TEMPLATES), default="default")
    parser.add_argument("--no-metrics", action="store_true", help="cards without metrics")
    parser.add_argument("--out-dir", type=Path, help="keep the videos here")
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows = run_video_bench(
        args.counts,
        args.out_dir,
        template=args.template,
        include_metrics=not args.no_metrics,
    )
    load_after = os.getloadavg()
    print(
        f"yearly video, template {args.template!r}, metrics {not args.no_metrics}, "
        f"1280x720 @ {FPS} fps; {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n")
    print(format_table(rows))
    print(
        "\nrender: render_yearly_video end to end; encode: the same frames built beforehand,"
        "\nonly PyAV encoding timed; video/s: seconds of video per second of wall time;"
        "\ncpu s: process CPU, encoder threads included."
    )
    print(_target_line(rows))


if __name__ == "__main__":
    main()
