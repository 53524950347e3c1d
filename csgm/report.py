"""Combine recovery runs into one error-versus-m plot, table and image grid.

    python -m csgm.report RUN_DIR_OR_SWEEP_DIR... [--out DIR] [--metric mse|psnr|ssim] [--m 100]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from csgm.errors import CsgmError
from csgm.files import atomic_write_bytes
from csgm.recovery.store import SUMMARY_FIELDS, ResultsStore, csv_bytes, summarise, summary_key
from csgm.reporting.plots import METRIC_LABELS, X_AXES, plot_error_curves, save_image_rows
from csgm.reporting.table import format_summary

__all__ = ["find_runs", "read_summaries", "comparison_grid", "build_report", "main"]


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Every recovery run folder (one holding results.csv) at or below the given paths."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise CsgmError(f"{str(path)!r} does not exist; pass recovery run folders (or folders that contain them)")
        runs += sorted(p.parent for p in path.rglob("results.csv"))
    if not runs:
        raise CsgmError(f"no results.csv under {[str(p) for p in paths]}; run recover.py first")
    return sorted(set(runs))


def _summary(run: Path, request: dict | None) -> list[dict[str, Any]]:
    """The run's summary.csv, or, for a ``request`` {m: [...], images: N}, the summary of just those rows."""
    name = "summary.csv" if request is None else "results.csv"
    with open(run / name, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if request is None:
        return rows
    wanted = set(request["m"])
    return summarise([r for r in rows if int(r["m"]) in wanted and int(r["image_id"]) < request["images"]])


def read_summaries(runs: Sequence[tuple[Path, dict | None]]) -> list[dict[str, Any]]:
    """Summary rows of (run folder, request or None) pairs; where two runs give the same point (solver,
    operator, noise, noise std, m), the run folder is appended to the solver name so that their curves
    stay apart."""
    per_run = [(run, _summary(run, request)) for run, request in runs]
    owners: dict[tuple, set[Path]] = {}
    for run, rows in per_run:
        for r in rows:
            owners.setdefault(summary_key(r), set()).add(run)
    clashing = {run for runs in owners.values() if len(runs) > 1 for run in runs}
    merged: list[dict[str, Any]] = []
    for run, rows in per_run:
        for r in rows:
            if run in clashing:
                r = {**r, "solver": f"{r['solver']} [{run.name}]"}
            merged.append({**r, "run": str(run)})
    return merged


def comparison_grid(runs: Sequence[Path], m: int, count: int, out: Path) -> Path | None:
    """Paper-style grid at one m: originals on top (from the first run's ``originals.pt``), then one row
    per run that recovered the same images at that m."""
    rows, reference = [], None
    for run in runs:
        recon_path, originals_path = run / "reconstructions.pt", run / "originals.pt"
        if not recon_path.is_file() or not originals_path.is_file():
            continue
        recon = ResultsStore(run).reconstructions()
        originals = torch.load(originals_path, weights_only=True)
        ids = [i for i in originals["ids"].tolist() if (m, i) in recon][:count]
        if not ids:
            continue
        if reference is None:
            reference = ids
            rows.append(originals["images"][[originals["ids"].tolist().index(i) for i in ids]])
        if ids[: len(reference)] == reference:
            rows.append(torch.stack([recon[(m, i)] for i in reference]))
    return save_image_rows(rows, out) if len(rows) > 1 else None


def build_report(runs: Sequence[tuple[Path, dict | None]], out: Path, metric: str = "mse", x: str = "m",
                 m: int | None = None, images: int = 10) -> dict[str, Any]:
    """Curves, combined summary.csv and comparison grid of the runs in ``out``; returns what it wrote."""
    summary = read_summaries(runs)
    curve = plot_error_curves(summary, out / f"error_vs_{x}_{metric}.png", metric, x=x)
    atomic_write_bytes(out / "summary.csv", csv_bytes(summary, ["run", *SUMMARY_FIELDS]))
    solvers = {r["solver"] for r in summary}
    common = set.intersection(*({int(r["m"]) for r in summary if r["solver"] == s} for s in solvers)) if solvers else set()
    m = m if m is not None else (max(common) if common else None)
    grid = comparison_grid([run for run, _ in runs], m, images, out / f"comparison_m{m}.png") if m is not None else None
    return {"summary": summary, "curve": curve, "grid": grid}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csgm.report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="recovery run folders, or folders that contain them (sweeps)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the first path)")
    parser.add_argument("--metric", choices=sorted(METRIC_LABELS), default="mse")
    parser.add_argument("--x", choices=sorted(X_AXES), default="m", help="the curve's x axis")
    parser.add_argument("--m", type=int, default=None, help="m of the comparison image grid (default: the largest common m)")
    parser.add_argument("--images", type=int, default=10, help="images in the comparison grid")
    args = parser.parse_args(argv)
    try:
        runs = [(run, None) for run in find_runs(args.paths)]
        report = build_report(runs, args.out or Path(args.paths[0]), args.metric, args.x, args.m, args.images)
    except CsgmError as exc:
        print(f"csgm: error: {exc}", file=sys.stderr)
        return 2
    summary = report["summary"]
    print(format_summary(sorted(summary, key=summary_key)))
    print(f"curve  {report['curve']}")
    if report["grid"] is not None:
        print(f"grid   {report['grid']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
