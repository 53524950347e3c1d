"""A recovery's artifacts from its result: originals, error curve, image grids, x_hat (no ground truth), the
experiment report's marker and W&B; written together with the run's tables, so none is ever stale."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from csgm.files import atomic_write_files
from csgm.recovery.result import RecoveryResult
from csgm.reporting.plots import (
    error_curves_png,
    image_png,
    image_rows_png,
    posterior_grid_png,
    reliability_diagram_png,
)
from csgm.reporting.sweep import register_run
from csgm.reporting.wandb_log import log_recovery_to_wandb
from csgm.results import COVERAGE_LEVELS, coverage_column, tensor_bytes

__all__ = ["write_artifacts"]


def _grid_rows(
    x_hat: dict[tuple[int, int], torch.Tensor], originals: dict[str, torch.Tensor], original_label: str
) -> tuple[list[torch.Tensor], list[str]]:
    """Originals on top, then one row per m of this run (an m shown only when all shown images are done),
    with the row labels."""
    ids = originals["ids"].tolist()
    if not ids:
        return [], []
    rows, labels = [originals["images"]], [original_label]
    for m in sorted({m for m, _ in x_hat}):
        if all((m, i) in x_hat for i in ids):
            rows.append(torch.stack([x_hat[(m, i)] for i in ids]))
            labels.append(f"m = {m}")
    return (rows, labels) if len(rows) > 1 else ([], [])


def _posterior_rows(merged, originals: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[str], list[int]]:
    """For samplers: originals on top, then per m the posterior mean, two samples and the std map in pixel units;
    with the row labels and the indices of the std rows (drawn in a colour map with a colour bar)."""
    ids = originals["ids"].tolist()
    rows, labels, std_rows = [originals["images"]], ["original"], []
    for m in sorted({m for m, _ in merged.posterior}):
        if not ids or not all((m, i) in merged.posterior for i in ids):
            continue
        rows.append(torch.stack([merged.x_hat[(m, i)] for i in ids]))
        labels.append(f"m = {m}: mean")
        samples = torch.stack([merged.posterior[(m, i)]["samples"] for i in ids])
        for s in range(min(2, samples.shape[1])):
            rows.append(samples[:, s])
            labels.append("sample")
        std_rows.append(len(rows))
        rows.append(torch.stack([merged.posterior[(m, i)]["pixel_std"] for i in ids]))
        labels.append("std")
    return (rows, labels, std_rows) if len(rows) > 1 else ([], [], [])


def _reliability_curves(summary: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """Per m of a sampler's run: (nominal, mean empirical coverage) of its central pixel intervals at every level."""
    curves = {}
    for row in summary:
        points = [
            (level, float(row[f"{coverage_column(level)}_mean"]))
            for level in COVERAGE_LEVELS
            if row.get(f"{coverage_column(level)}_mean") is not None
        ]
        if points:
            curves[f"m = {row['m']}"] = points
    return curves


def _npy_bytes(array: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.numpy())
    return buffer.getvalue()


def write_artifacts(cfg: dict, result: RecoveryResult) -> dict[str, Path]:
    """Write the result's tables and every artifact in one atomic step, then register the run with its experiment's
    report and log it to W&B (logger=wandb); returns the paths by name."""
    run_dir, merged = result.run_dir, result.merged
    paths = {"results": run_dir / "results.csv", "summary": run_dir / "summary.csv"}
    files = dict(result.files)
    shown_ids = list(range(min(cfg["save_images"], result.count)))
    grid_title = f"{result.solver_label}, {result.operator_name} operator, {result.noise_label}"
    if result.originals is not None:
        ids = list(range(len(shown_ids)))
        images = result.originals(ids).detach().cpu().float() if ids else torch.zeros(0)
        shown = {"ids": torch.tensor(ids, dtype=torch.long), "images": images}
        grid_rows, grid_labels = _grid_rows(merged.x_hat, shown, result.original_label)
        paths["curve"] = run_dir / "error_vs_m.png"
        files.update({run_dir / "originals.pt": tensor_bytes(shown), paths["curve"]: error_curves_png(merged.summary)})
    else:  # no ground truth: the estimates alone, as one array and one PNG per image
        m = result.measurements[0]
        estimates = torch.stack([merged.x_hat[(m, i)] for i in range(result.count)])
        grid_rows, grid_labels = ([estimates[shown_ids]], [f"x̂ (m = {m})"]) if shown_ids else ([], [])
        paths["estimates"] = run_dir / "x_hat.npy"
        files[paths["estimates"]] = _npy_bytes(estimates)
        files.update({run_dir / "images" / f"x_hat_{i:05d}.png": image_png(estimates[i]) for i in range(result.count)})
    if grid_rows:
        paths["recovery_grid"] = run_dir / "grid.png"
        files[paths["recovery_grid"]] = image_rows_png(grid_rows, grid_labels, grid_title)
    if merged.posterior and result.originals is not None:
        posterior_rows, posterior_labels, std_rows = _posterior_rows(merged, shown)
        if posterior_rows:
            paths["posterior_grid"] = run_dir / "posterior_grid.png"
            files[paths["posterior_grid"]] = posterior_grid_png(posterior_rows, posterior_labels, std_rows, grid_title)
        curves = _reliability_curves(merged.summary)
        if curves:
            paths["reliability"] = run_dir / "reliability.png"
            files[paths["reliability"]] = reliability_diagram_png(curves, f"pixel intervals: {grid_title}")
    atomic_write_files(files)  # every output changes together: none is ever stale relative to results.csv
    if not grid_rows:
        (run_dir / "grid.png").unlink(missing_ok=True)
    if cfg.get("report_name"):
        register_run(cfg, run_dir, result.solver_label, sorted(result.measurements), result.count, result.noise_std)
    if cfg["logger"]["name"] == "wandb":
        log_recovery_to_wandb(
            cfg["logger"],
            run_dir,
            cfg,
            merged.summary,
            result.noise_label,
            {k: v for k, v in paths.items() if str(v).endswith(".png")},
        )
    return paths
