"""Combine recovery runs into one error-versus-m plot, table, image grid and report.md.

python -m csgm.report RUN_DIR_OR_SWEEP_DIR... [--out DIR] [--metric mse|psnr|ssim] [--m 100] [--log-y | --linear-y]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from csgm.cli import user_error_line
from csgm.errors import CsgmError
from csgm.results import summary_key
from csgm.reporting.plots import METRIC_LABELS, X_AXES
from csgm.reporting.experiment_report import build_report, find_runs
from csgm.reporting.table import format_summary

__all__ = ["main", "command"]


def _check_arguments(out: Path, images: int) -> None:
    """The output folder must be a folder (or not exist yet) and the grid must show at least one image."""
    if out.exists() and not out.is_dir():
        raise CsgmError(f"--out {str(out)!r} is a file; give a folder for the report (it is created if missing)")
    if images < 1:
        raise CsgmError(f"--images {images} must be >= 1 (the images in the comparison grid)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csgm-report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="recovery run folders, or folders that contain them (sweeps)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the first path)")
    parser.add_argument("--metric", choices=sorted(METRIC_LABELS), default="mse")
    parser.add_argument("--x", choices=sorted(X_AXES), default="m", help="the curve's x axis")
    parser.add_argument(
        "--m", type=int, default=None, help="m of the comparison image grid (default: the largest common m)"
    )
    parser.add_argument("--images", type=int, default=10, help="images in the comparison grid")
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument(
        "--log-y",
        dest="log_y",
        action="store_true",
        default=None,
        help="log y axis (default: when the values span > 2 decades)",
    )
    scale.add_argument("--linear-y", dest="log_y", action="store_false", help="linear y axis")
    args = parser.parse_args(argv)
    out = args.out or Path(args.paths[0])
    try:
        runs = [(run, None) for run in find_runs(args.paths)]
        _check_arguments(out, args.images)
        report = build_report(runs, out, args.metric, args.x, args.m, args.images, args.log_y)
    except Exception as exc:
        line = user_error_line(exc)
        if line is None:
            raise
        print(f"csgm: error: {line}", file=sys.stderr)
        return 2
    summary = report["summary"]
    print(format_summary(sorted(summary, key=summary_key)))
    print(f"curve  {report['curve']}")
    if report["grid"] is not None:
        print(f"grid   {report['grid']}")
    print(f"report {report['report']}")
    return 0


def command() -> None:
    """``csgm-report``: the console script of ``python -m csgm.report``."""
    sys.exit(main())


if __name__ == "__main__":
    command()
