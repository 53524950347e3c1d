"""Error-versus-m curves with 95% bands, and paper-style image grids."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torchvision.utils import make_grid, save_image

from csgm.files import atomic_write_bytes

__all__ = ["plot_error_curves", "save_image_rows", "error_curves_png", "image_rows_png", "METRIC_LABELS", "X_AXES"]

METRIC_LABELS = {"mse": "per-pixel squared error ||x̂ - x||² / n", "psnr": "PSNR (dB)", "ssim": "SSIM"}


X_AXES = {"m": "number of measurements m", "noise_std": "noise standard deviation"}


def plot_error_curves(summary: Sequence[dict[str, Any]], path: str | Path, metric: str = "mse", title: str | None = None,
                      x: str = "m") -> Path:
    """``error_curves_png`` written to ``path``."""
    atomic_write_bytes(path, error_curves_png(summary, metric, title, x))
    return Path(path)


def error_curves_png(summary: Sequence[dict[str, Any]], metric: str = "mse", title: str | None = None, x: str = "m") -> bytes:
    """One curve per setting of ``metric`` mean versus ``x`` (m or noise_std), with a 95% band, as PNG bytes.
    Failed images are not in the means (summaries exclude them); the legend says how many there were,
    and a point where every image failed is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(row: dict[str, Any]) -> str:
        if x == "m":
            return f"{row['solver']} ({row['operator']}, noise {row['noise']} {float(row.get('noise_std', 0)):g})"
        return f"{row['solver']} ({row['operator']}, m = {row['m']})"

    curves: dict[str, list[dict[str, Any]]] = {}
    for row in summary:
        curves.setdefault(label(row), []).append(row)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in sorted(curves.items()):
        failed = sum(int(r.get("failed", 0)) for r in rows)
        if failed:
            name += f" [{failed} failed images excluded]"
        rows = sorted((r for r in rows if math.isfinite(float(r[f"{metric}_mean"]))), key=lambda r: float(r[x]))
        xs = [float(r[x]) for r in rows]
        mean = [float(r[f"{metric}_mean"]) for r in rows]
        half = [float(r[f"{metric}_ci95"]) for r in rows]
        ax.plot(xs, mean, marker="o", label=name)
        ax.fill_between(xs, [a - b for a, b in zip(mean, half)], [a + b for a, b in zip(mean, half)], alpha=0.25)
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title or f"reconstruction error versus {'measurements' if x == 'm' else 'noise level'} (mean, 95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=120, format="png")
    plt.close(fig)
    return buffer.getvalue()


def save_image_rows(rows: Sequence[torch.Tensor], path: str | Path) -> Path:
    """``image_rows_png`` written to ``path``."""
    atomic_write_bytes(path, image_rows_png(rows))
    return Path(path)


def image_rows_png(rows: Sequence[torch.Tensor]) -> bytes:
    """Stack equally long image rows (each (N, C, H, W)): originals first, then one row per method; PNG bytes."""
    images = torch.cat([r.detach().cpu().float() for r in rows])
    grid = make_grid(images, nrow=len(rows[0]), padding=2, pad_value=1.0)
    buffer = io.BytesIO()
    save_image(grid, buffer, format="png")
    return buffer.getvalue()
