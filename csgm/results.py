"""The results schema of a recovery: one row per (m, image id) (``ResultRow``, results.csv) and the summary per
curve point (``summarise``, summary.csv); read by recovery (which writes them) and reporting (which reads them).

Each row carries its verdict (csgm.recovery.verdicts): ``status`` ok, unreliable, not_converged or diverged, with the
flags behind it in ``reason``, and its data fit (``standardised_residual``, ``data_fit``). A failed (diverged) image
has no error values: its metric columns are empty, summaries average over the other images only and count the
failed ones (``failed``). Summaries count the unreliable and not-converged images they average (``unreliable``,
``not_converged``) and the rows that fit y worse or better than the noise allows (``misfit``, ``overfit``).
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
    "coverage_column",
    "COVERAGE_LEVELS",
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
    status: str  # ok, unreliable, not_converged or diverged (csgm.recovery.verdicts)
    seconds: float  # solver time per image of its batch
    params: str  # JSON of the options chosen on the validation split
    sample_mse: float | None = None  # samplers: mean per-pixel error of one posterior sample
    pixel_std: float | None = None  # samplers: mean posterior standard deviation per pixel
    coverage90: float | None = None  # samplers: fraction of pixels inside their central 90% interval
    acceptance: float | None = None  # MALA: Metropolis acceptance rate
    std_error_correlation: float | None = None  # samplers: correlation over pixels of the std map with |x_hat - x|
    reason: str = ""  # the flags behind the status, ';'-separated (e.g. rhat>1.1;acceptance<0.05)
    standardised_residual: float | None = None  # ||A x_hat - y||^2 / (m sigma^2): 1 when x_hat explains y to the noise
    data_fit: str = ""  # consistent, misfit (worse than the noise allows), overfit (better), "" where not checked
    rhat: float | None = None  # samplers: the worst latent coordinate's R-hat across chains
    ess_bulk: float | None = None  # samplers: the worst latent coordinate's bulk effective sample size
    coverage50: float | None = None  # samplers: as coverage90, for the central 50%, 80% and 95% intervals
    coverage80: float | None = None
    coverage95: float | None = None


RESULT_FIELDS = [f.name for f in fields(ResultRow)]
POSTERIOR_COLUMNS = (
    "sample_mse",
    "pixel_std",
    "coverage90",
    "acceptance",
    "std_error_correlation",
    "coverage50",
    "coverage80",
    "coverage95",
)


COVERAGE_LEVELS = (0.5, 0.8, 0.9, 0.95)  # samplers' central pixel intervals, one coverage column each


def coverage_column(level: float) -> str:
    """The results column of the coverage of the central ``level`` pixel intervals: coverage90 for 0.9."""
    return f"coverage{round(100 * level)}"


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
    "unreliable",
    "misfit",
    "overfit",
    "standardised_residual_mean",
]
FAILED_STATUSES = ("diverged", "all_restarts_diverged")  # the second: rows of folders written before verdicts
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
    that did not fail and have ground truth (NaN if none), the mean measurement loss ||A x̂ - y||² and
    standardised residual, the counts of failed images and of the not converged and unreliable ones inside the
    means, and of the misfit and overfit rows; sorted."""
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
            "unreliable": sum(r["status"] == "unreliable" for r in members),
            "misfit": sum(r.get("data_fit") == "misfit" for r in members),
            "overfit": sum(r.get("data_fit") == "overfit" for r in members),
            "params": members[0].get("params", "{}"),
        }
        truth = [r for r in kept if r["mse"] not in (None, "")]  # rows with ground truth
        for metric in METRICS:
            mean, half = mean_ci95([float(r[metric]) for r in truth])
            entry[f"{metric}_mean"], entry[f"{metric}_ci95"] = mean, half
        entry["measurement_loss_mean"] = mean_ci95([float(r["measurement_loss"]) for r in kept])[0]
        residuals = [
            float(r["standardised_residual"]) for r in kept if r.get("standardised_residual") not in (None, "")
        ]
        entry["standardised_residual_mean"] = mean_ci95(residuals)[0] if residuals else None
        for column in POSTERIOR_COLUMNS:  # samplers only: absent (None) for point estimators
            values = [float(r[column]) for r in kept if r.get(column) not in (None, "")]
            entry[f"{column}_mean"] = mean_ci95(values)[0] if values else None
        summary.append(entry)
    return summary
