"""The results schema of a recovery: one row per (m, image id) (``ResultRow``, results.csv) and the summary per
curve point (``summarise``, summary.csv); read by recovery (which writes them) and reporting (which reads them).

A failed image (status ``all_restarts_diverged`` or ``diverged``) has no error values: its metric columns are
empty, summaries average over the other images only and count the failed ones (``failed``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from typing import Any, Iterable

import torch

from csgm.metrics import mean_ci95

__all__ = [
    "ResultRow",
    "RESULT_FIELDS",
    "SUMMARY_FIELDS",
    "POSTERIOR_COLUMNS",
    "FAILED_STATUSES",
    "METRICS",
    "is_failed",
    "csv_bytes",
    "tensor_bytes",
    "summary_key",
    "summarise",
]


@dataclass(frozen=True)
class ResultRow:
    """One recovered image: the schema of results.csv and of every shard row (defined here only).
    Metrics are None for a failed image and for measurements without ground truth."""

    solver: str
    operator: str
    noise: str
    noise_std: float  # the noise's standard deviation (Poisson: at unit intensity)
    m: int
    image_id: int
    mse: float | None  # per-pixel error ||x_hat - x||^2 / n
    psnr: float | None
    ssim: float | None
    measurement_loss: float | None  # the data term of x_hat (||A x_hat - y||^2 for Gaussian noise)
    iterations: int
    dropped_restarts: int
    generator_evaluations: int
    status: str  # ok, not_converged, or one of FAILED_STATUSES
    seconds: float  # solver time per image of its batch
    params: str  # JSON of the options chosen on the validation split
    sample_mse: float | None = None  # samplers: mean per-pixel error of one posterior sample
    pixel_std: float | None = None  # samplers: mean posterior standard deviation per pixel
    coverage90: float | None = None  # samplers: fraction of pixels inside their central 90% interval
    acceptance: float | None = None  # MALA: Metropolis acceptance rate
    std_error_correlation: float | None = None  # samplers: correlation over pixels of the std map with |x_hat - x|


RESULT_FIELDS = [f.name for f in fields(ResultRow)]
POSTERIOR_COLUMNS = ("sample_mse", "pixel_std", "coverage90", "acceptance", "std_error_correlation")
SUMMARY_FIELDS = [
    "solver",
    "operator",
    "noise",
    "noise_std",
    "m",
    "images",
    "mse_mean",
    "mse_ci95",
    "psnr_mean",
    "psnr_ci95",
    "ssim_mean",
    "ssim_ci95",
    "measurement_loss_mean",
    "failed",
    "not_converged",
    "params",
    *(f"{c}_mean" for c in POSTERIOR_COLUMNS),
]
FAILED_STATUSES = ("all_restarts_diverged", "diverged")
METRICS = ("mse", "psnr", "ssim")


def is_failed(row: dict[str, Any]) -> bool:
    """Whether a result row is a failed image (no estimate worth a number)."""
    return row["status"] in FAILED_STATUSES


def csv_bytes(rows: Iterable[dict[str, Any]], fields: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def tensor_bytes(payload: Any) -> bytes:
    """``torch.save`` into memory (for atomic writes)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def summary_key(row: dict[str, Any]) -> tuple[str, str, str, float, int]:
    """One point of a curve: (solver, operator, noise, noise std, m) of a result or summary row."""
    return row["solver"], row["operator"], row["noise"], float(row.get("noise_std", 0.0)), int(row["m"])


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and 95% interval of mse/psnr/ssim per (solver, operator, noise, noise std, m) over the images
    that did not fail and have ground truth (NaN if none), the mean measurement loss ||A x̂ - y||², and the
    counts of failed and not converged images; sorted."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(summary_key(row), []).append(row)
    summary = []
    for (solver, operator, noise, noise_std, m), members in sorted(groups.items()):
        kept = [r for r in members if not is_failed(r)]
        entry: dict[str, Any] = {
            "solver": solver,
            "operator": operator,
            "noise": noise,
            "noise_std": noise_std,
            "m": m,
            "images": len(members),
            "failed": len(members) - len(kept),
            "not_converged": sum(r["status"] == "not_converged" for r in members),
            "params": members[0].get("params", "{}"),
        }
        truth = [r for r in kept if r["mse"] not in (None, "")]  # rows with ground truth
        for metric in METRICS:
            mean, half = mean_ci95([float(r[metric]) for r in truth])
            entry[f"{metric}_mean"], entry[f"{metric}_ci95"] = mean, half
        entry["measurement_loss_mean"] = mean_ci95([float(r["measurement_loss"]) for r in kept])[0]
        for column in POSTERIOR_COLUMNS:  # samplers only: absent (None) for point estimators
            values = [float(r[column]) for r in kept if r.get(column) not in (None, "")]
            entry[f"{column}_mean"] = mean_ci95(values)[0] if values else None
        summary.append(entry)
    return summary
