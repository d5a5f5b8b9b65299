"""Content benchmark: yearly video rendering and report generation, with their references.

Prints, for 12, 50 and 200 POCs, the time to render the yearly video, the seconds of video
per second of rendering, and the same frames encoded by PyAV alone (the reference); then the
time to build and render a 10,000-POC report in each format, against building it alone.
Targets: a 50-POC video in under 30 s; a 10,000-POC PDF in under 10 s.

    python bench/content.py [--counts 12 50 200] [--pocs 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from content_reports import format_results, run_report_bench
from content_video import TARGET_POCS, TARGET_SECONDS, format_table, run_video_bench

PDF_TARGET_SECONDS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--counts", type=int, nargs="+", default=[12, 50, 200])
    parser.add_argument("--pocs", type=int, default=10_000, help="POCs in each report")
    parser.add_argument("--repeat", type=int, default=3, help="report runs per figure (median)")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores, shared machine)")
    print("\n== yearly video (render = Pillow cards + PyAV encode; reference = PyAV encode only)")
    videos = run_video_bench(args.counts)
    print(format_table(videos))
    for row in videos:
        if row["pocs"] == TARGET_POCS:
            met = "met" if row["render_seconds"] < TARGET_SECONDS else "MISSED"
            print(f"target {TARGET_POCS} POCs < {TARGET_SECONDS:.0f} s: {met}")

    print(f"\n== reports of {args.pocs:,} POCs, detailed (reference: build only, no rendering)")
    reports = run_report_bench(args.pocs, repeat=args.repeat)
    print(format_results(reports))
    for row in reports:
        if row["format"] == "pdf":
            met = "met" if row["total_s"] < PDF_TARGET_SECONDS else "MISSED"
            print(f"target PDF < {PDF_TARGET_SECONDS:.0f} s: {met} ({row['total_s']:.2f} s)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
