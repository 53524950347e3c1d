"""Combine recovery runs into one error-versus-m plot, summary table, comparison grid and report.md
(the library behind ``python -m csgm.report`` and the sweep report of experiments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from csgm.errors import CsgmError
from csgm.files import atomic_write_bytes, read_csv_rows
from csgm.recovery.store import ResultsStore
from csgm.results import METRICS, SUMMARY_FIELDS, csv_bytes, summarise, summary_key
from csgm.reporting.plots import plot_error_curves, save_image_rows
from csgm.reporting.table import markdown_summary

__all__ = ["find_runs", "read_summaries", "comparison_grid", "build_report"]

# what the report reads of each table, so that a hand-edited one fails in one line (csgm.files.read_csv_rows)
KEY_COLUMNS = {"text": ("solver", "operator", "noise"), "integers": ("m",)}
SUMMARY_COLUMNS = {
    **KEY_COLUMNS,
    "numbers": ("noise_std", "images", "failed", *(f"{k}_{s}" for k in METRICS for s in ("mean", "ci95"))),
}
RESULT_COLUMNS = {
    "text": (*KEY_COLUMNS["text"], "status"),
    "integers": ("m", "image_id"),
    "numbers": ("noise_std",),
    "blank_numbers": (*METRICS, "measurement_loss"),
}


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
    if request is None:
        return read_csv_rows(run / "summary.csv", **SUMMARY_COLUMNS)
    rows = read_csv_rows(run / "results.csv", **RESULT_COLUMNS)
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


def comparison_grid(
    runs: Sequence[Path], m: int, count: int, out: Path, labels: Sequence[str] | None = None
) -> Path | None:
    """Paper-style grid at one m: originals on top (from the first run's ``originals.pt``), then one row
    per run that recovered the same images at that m, labelled by ``labels`` (the run folder names if None)."""
    rows, names, reference = [], [], None
    for index, run in enumerate(runs):
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
            names.append("original")
        if ids[: len(reference)] == reference:
            rows.append(torch.stack([recon[(m, i)] for i in reference]))
            names.append(labels[index] if labels else run.name)
    return save_image_rows(rows, out, names, f"m = {m}") if len(rows) > 1 else None


def _run_label(rows: list[dict[str, Any]], run: Path) -> str:
    """The legend name of a run: its solver label (with the folder when two runs share it, as the curves do)."""
    return next((r["solver"] for r in rows if r.get("run") == str(run)), run.name)


def build_report(
    runs: Sequence[tuple[Path, dict | None]],
    out: Path,
    metric: str = "mse",
    x: str = "m",
    m: int | None = None,
    images: int = 10,
    log_y: bool | None = None,
) -> dict[str, Any]:
    """Curves, combined summary.csv, comparison grid and report.md (figures and table, readable in any
    Markdown viewer) of the runs in ``out``; returns what it wrote."""
    summary = read_summaries(runs)
    if m is not None and m not in {int(r["m"]) for r in summary}:
        raise CsgmError(f"m={m} matches no run; the runs have m = {sorted({int(r['m']) for r in summary})}")
    curve = plot_error_curves(summary, out / f"error_vs_{x}_{metric}.png", metric, x=x, log_y=log_y)
    atomic_write_bytes(out / "summary.csv", csv_bytes(summary, ["run", *SUMMARY_FIELDS]))
    solvers = {r["solver"] for r in summary}
    common = (
        set.intersection(*({int(r["m"]) for r in summary if r["solver"] == s} for s in solvers)) if solvers else set()
    )
    m = m if m is not None else (max(common) if common else None)
    folders = [run for run, _ in runs]
    grid = (
        comparison_grid(folders, m, images, out / f"comparison_m{m}.png", [_run_label(summary, r) for r in folders])
        if m is not None
        else None
    )
    document = [
        f"# Recovery report: {out.name}",
        "",
        f"{len(folders)} run folder(s); per-pixel error is ||x̂ - x||²/n on the "
        "[0, 1] scale, mean ± 95% interval over the images that did not fail.",
        "",
        f"![error versus {x}]({curve.name})",
        "",
    ]
    if grid is not None:
        document += [f"![comparison at m = {m}]({grid.name})", ""]
    document += [markdown_summary(sorted(summary, key=summary_key)), ""]
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(document).encode())
    return {"summary": summary, "curve": curve, "grid": grid, "report": report}
