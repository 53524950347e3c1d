"""Plain-text tables of recovery summaries."""

from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["flagged", "format_summary", "markdown_summary"]


def format_summary(summary: Sequence[dict[str, Any]]) -> str:
    """One line per (solver, operator, noise, m): images, failed images, flagged images (not converged or
    unreliable: inside the means, see results.csv's ``reason``), then per-pixel error mean ± 95%, PSNR and SSIM
    over the images that did not fail ('all failed' when none is left)."""
    header = (
        f"{'solver':<18} {'operator':<10} {'noise':<16} {'m':>6} {'images':>6} {'failed':>6} {'flagged':>7}  "
        f"{'per-pixel error':>19}  {'PSNR':>12}  {'SSIM':>13}"
    )
    lines = [header, "-" * len(header)]
    for r in summary:
        noise = _noise_cell(r)
        line = (
            f"{r['solver']:<18} {r['operator']:<10} {noise:<16} {int(r['m']):>6} {int(r['images']):>6} "
            f"{int(r['failed']):>6} {flagged(r):>7}  "
        )
        if math.isnan(float(r["mse_mean"])):
            line += f"{'all failed':>19}" if int(r["failed"]) == int(r["images"]) else _no_truth(r)
        else:
            line += (
                f"{float(r['mse_mean']):>9.5f} ± {float(r['mse_ci95']):<7.5f}  "
                f"{float(r['psnr_mean']):>5.2f} ± {float(r['psnr_ci95']):<4.2f}  "
                f"{float(r['ssim_mean']):>5.3f} ± {float(r['ssim_ci95']):<5.3f}"
            )
        lines.append(line)
    return "\n".join(lines)


def markdown_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The same table as ``format_summary`` in Markdown."""
    lines = [
        "| solver | operator | noise | m | images | failed | flagged | per-pixel error | PSNR | SSIM |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in summary:
        noise = _noise_cell(r)
        if math.isnan(float(r["mse_mean"])):
            values = ("all failed" if int(r["failed"]) == int(r["images"]) else _no_truth(r)) + " | | "
        else:
            values = (
                f"{float(r['mse_mean']):.5f} ± {float(r['mse_ci95']):.5f} | {float(r['psnr_mean']):.2f} ± "
                f"{float(r['psnr_ci95']):.2f} | {float(r['ssim_mean']):.3f} ± {float(r['ssim_ci95']):.3f}"
            )
        lines.append(
            f"| {r['solver']} | {r['operator']} | {noise} | {int(r['m'])} | {int(r['images'])} | {int(r['failed'])} "
            f"| {flagged(r)} | {values} |"
        )
    return "\n".join(lines)


def flagged(row: dict[str, Any]) -> int:
    """The images of a summary row that are averaged but flagged: not converged or unreliable."""
    return int(row.get("not_converged") or 0) + int(row.get("unreliable") or 0)


def _no_truth(row: dict[str, Any]) -> str:
    """The error cell of a run without ground truth (input=file): the mean measurement loss instead."""
    return f"no ground truth; mean ||A x̂ - y||² {float(row['measurement_loss_mean']):.4g}"


def _noise_cell(row: dict[str, Any]) -> str:
    """'gaussian 0.1', or 'none' for noise-free measurements."""
    return f"{row['noise']} {float(row.get('noise_std', 0)):g}" if row["noise"] != "none" else "none"
