"""Error-versus-m curves with 95% bands, and labelled image grids (paper style)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from csgm.files import atomic_write_bytes
from csgm.reporting.table import flagged

__all__ = [
    "plot_error_curves",
    "save_image_rows",
    "error_curves_png",
    "image_png",
    "image_rows_png",
    "wants_log_scale",
    "pyplot",
    "figure_png",
    "band",
    "posterior_grid_png",
    "plot_rank_histogram",
    "reliability_diagram_png",
    "METRIC_LABELS",
    "X_AXES",
    "MIN_CELL_PIXELS",
]

METRIC_LABELS = {"mse": "per-pixel squared error ||x̂ - x||² / n", "psnr": "PSNR (dB)", "ssim": "SSIM"}
X_AXES = {"m": "number of measurements m", "noise_std": "noise standard deviation"}
MIN_CELL_PIXELS = 56  # each image of a grid is shown at least this many pixels wide
_LOG_SPAN = 100.0  # a y axis whose positive values span more than two decades is drawn on a log scale


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    pyplot().close(fig)
    return buffer.getvalue()


def wants_log_scale(values: Sequence[float], span: float = _LOG_SPAN) -> bool:
    """Whether positive values span more than ``span`` (two decades by default: a linear axis would flatten the
    small ones)."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    return bool(positive) and max(positive) / min(positive) > span


def band(mean: Sequence[float], half: Sequence[float], log_axis: bool) -> tuple[list[float], list[float]]:
    """The 95% band around ``mean`` (half-widths ``half``): mean -/+ half on a linear axis; on a log axis the same
    interval for log(mean) (delta method: mean * exp(-/+ half / mean)), which stays positive, so a band never
    runs to the bottom of the axis."""
    if not log_axis:
        return [a - b for a, b in zip(mean, half)], [a + b for a, b in zip(mean, half)]
    ratio = [math.exp(b / a) if a > 0 else math.inf for a, b in zip(mean, half)]
    return [a / r for a, r in zip(mean, ratio)], [a * r for a, r in zip(mean, ratio)]


def plot_error_curves(
    summary: Sequence[dict[str, Any]],
    path: str | Path,
    metric: str = "mse",
    title: str | None = None,
    x: str = "m",
    log_y: bool | None = None,
) -> Path:
    """``error_curves_png`` written to ``path``."""
    atomic_write_bytes(path, error_curves_png(summary, metric, title, x, log_y))
    return Path(path)


def error_curves_png(
    summary: Sequence[dict[str, Any]],
    metric: str = "mse",
    title: str | None = None,
    x: str = "m",
    log_y: bool | None = None,
) -> bytes:
    """One curve per setting of ``metric`` mean versus ``x`` (m or noise_std), a marker at every point, a 95%
    band, the legend outside the axes; PNG bytes. ``log_y`` None: a log y axis when the values span more than
    two decades. Failed images are not in the means (summaries exclude them); the legend says how many there
    were, and a point where every image failed is left out."""
    plt = pyplot()

    def label(row: dict[str, Any]) -> str:
        if x == "m":
            return f"{row['solver']} ({row['operator']}, noise {row['noise']} {float(row.get('noise_std', 0)):g})"
        return f"{row['solver']} ({row['operator']}, m = {row['m']})"

    curves: dict[str, list[dict[str, Any]]] = {}
    for row in summary:
        curves.setdefault(label(row), []).append(row)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    shown: list[float] = []
    curve_rows: list[tuple[str, str, str, list[float], list[float], list[float]]] = []
    styles = [
        ("o", "-"),
        ("s", "--"),
        ("^", "-."),
        ("D", ":"),
        ("v", "-"),
        ("x", "--"),
    ]  # curves that overlap stay apart
    for index, (name, rows) in enumerate(sorted(curves.items())):
        marker, line = styles[index % len(styles)]
        failed, flags = sum(int(r.get("failed", 0)) for r in rows), sum(flagged(r) for r in rows)
        if failed or flags:
            name += (
                " ["
                + ", ".join(
                    text
                    for count, text in ((failed, f"{failed} failed images excluded"), (flags, f"{flags} flagged"))
                    if count
                )
                + "]"
            )
        rows = sorted((r for r in rows if math.isfinite(float(r[f"{metric}_mean"]))), key=lambda r: float(r[x]))
        xs = [float(r[x]) for r in rows]
        mean = [float(r[f"{metric}_mean"]) for r in rows]
        half = [float(r[f"{metric}_ci95"]) for r in rows]
        shown += mean
        curve_rows.append((name, marker, line, xs, mean, half))
    log_axis = log_y if log_y is not None else wants_log_scale(shown)
    for name, marker, line, xs, mean, half in curve_rows:
        ax.plot(xs, mean, marker=marker, linestyle=line, markersize=5, markerfacecolor="none", label=name)
        low, high = band(mean, half, log_axis)
        ax.fill_between(xs, low, high, alpha=0.2)
    if log_axis:
        ax.set_yscale("log")
    grid = sorted({value for *_, xs, _, _ in curve_rows for value in xs})
    if x == "m" and wants_log_scale(grid, span=10.0):  # m spanning a decade or more: a log axis labelled at each m
        ax.set_xscale("log")
        ax.set_xticks(grid, [f"{value:g}" for value in grid])
        ax.minorticks_off()
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(
        title or f"reconstruction error versus {'measurements' if x == 'm' else 'noise level'} (mean, 95% interval)"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure_png(fig)


def image_png(image: torch.Tensor) -> bytes:
    """One (C, H, W) image in [0, 1] as PNG bytes, pixel for pixel: a one-channel image as a grey PNG (mode L),
    three channels as RGB."""
    from PIL import Image

    pixels = image.detach().cpu().float().clamp(0, 1).mul(255).add(0.5).to(torch.uint8)  # torchvision's rounding
    array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png")  # uint8 (H, W) is mode L, (H, W, 3) is RGB
    return buffer.getvalue()


def save_image_rows(
    rows: Sequence[torch.Tensor], path: str | Path, labels: Sequence[str] | None = None, title: str | None = None
) -> Path:
    """``image_rows_png`` written to ``path``."""
    atomic_write_bytes(path, image_rows_png(rows, labels, title))
    return Path(path)


def _strip(row: torch.Tensor, gap: int) -> torch.Tensor:
    """The images of a row (N, C, H, W) side by side in one (H, N W + (N - 1) gap, C) array, white between them."""
    images = row.detach().cpu().float().clamp(0, 1)
    count, channels, height, _ = images.shape
    white = torch.ones(count, channels, height, gap)
    spaced = torch.cat((images, white), dim=3).permute(1, 2, 0, 3).flatten(2)  # (C, H, N (W + gap))
    return spaced[..., : spaced.shape[-1] - gap].permute(1, 2, 0)


def image_rows_png(
    rows: Sequence[torch.Tensor], labels: Sequence[str] | None = None, title: str | None = None
) -> bytes:
    """Equally long image rows (each (N, C, H, W) in [0, 1]), originals first, then one row per method; a label
    left of every row, a title above; every image at least ``MIN_CELL_PIXELS`` wide. PNG bytes. Each row is one
    picture of its images side by side (one axes per row, not per image: the cost grows with the rows only)."""
    plt = pyplot()
    count, (channels, height, width) = len(rows[0]), tuple(rows[0].shape[1:])
    cell = max(MIN_CELL_PIXELS, width) / 100.0  # inches at dpi 100; labels and title are added around the cells
    fig, axes = plt.subplots(
        len(rows), 1, squeeze=False, dpi=100, figsize=(count * cell, len(rows) * cell * height / width)
    )
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, hspace=0.04)
    gap = max(1, round(0.04 * width))
    for r, row in enumerate(rows):
        ax = axes[r][0]
        strip = _strip(row, gap)
        if channels == 1:
            ax.imshow(strip[..., 0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(strip.numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if labels:
            ax.set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=9, labelpad=6)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0, va="bottom")
    return figure_png(fig)


def posterior_grid_png(
    rows: Sequence[torch.Tensor], labels: Sequence[str], std_rows: Sequence[int], title: str | None = None
) -> bytes:
    """A sampler's grid: image rows (N, C, H, W) in [0, 1] drawn in grey, each row a label on its left; the rows
    at indices ``std_rows`` are posterior standard deviations in pixel units, drawn in one colour map from 0 to
    their common maximum with a colour bar that gives the scale. PNG bytes."""
    plt = pyplot()
    std_rows = set(std_rows)
    if any(not 0 <= r < len(rows) for r in std_rows):
        raise ValueError(f"std_rows {sorted(std_rows)} must index the {len(rows)} rows")
    count, (_, height, width) = len(rows[0]), tuple(rows[0].shape[1:])
    peak = max([float(rows[r].max()) for r in std_rows] + [1e-12])
    cell = max(MIN_CELL_PIXELS, width) / 100.0
    fig, axes = plt.subplots(
        len(rows),
        count,
        squeeze=False,
        dpi=100,
        figsize=(count * cell + (0.9 if std_rows else 0), len(rows) * cell * height / width),
    )
    fig.subplots_adjust(
        left=0, right=count * cell / (count * cell + 0.9) if std_rows else 1, bottom=0, top=1, wspace=0.04, hspace=0.04
    )
    shown = None
    for r, row in enumerate(rows):
        for c in range(count):
            ax = axes[r][c]
            image = row[c].detach().cpu().float()
            if r in std_rows:
                shown = ax.imshow(image.mean(0).numpy(), cmap="magma", vmin=0, vmax=peak, interpolation="nearest")
            elif image.shape[0] == 1:
                ax.imshow(image[0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[r][0].set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=9, labelpad=6)
    if shown is not None:  # the bar in the margin right of the grid, spanning the std rows
        right = count * cell / (count * cell + 0.9)
        boxes = [axes[r][-1].get_position() for r in std_rows]
        low, high = min(b.y0 for b in boxes), max(b.y1 for b in boxes)
        bar_axes = fig.add_axes((right + 0.1 * (1 - right), low, 0.15 * (1 - right), high - low))
        bar = fig.colorbar(shown, cax=bar_axes)
        bar.set_label("posterior std (pixel units)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0, va="bottom")
    return figure_png(fig)


def plot_rank_histogram(ax, test: dict[str, Any], color: str) -> None:
    """A rank-uniformity test's histogram (``csgm.evaluation.rank_tests.rank_uniformity``) as bars on ``ax``, with
    the counts a uniform rank would give as a dashed step labelled "uniform"."""
    ax.bar(range(len(test["histogram"])), test["histogram"], color=color)
    ax.step(range(len(test["expected"])), test["expected"], where="mid", color="black", linestyle="--", label="uniform")
    ax.set_ylabel("count")


def reliability_diagram_png(curves: dict[str, Sequence[tuple[float, float]]], title: str | None = None) -> bytes:
    """Nominal versus empirical coverage of central intervals, one curve per method ({label: [(nominal,
    empirical), ...]}, both in [0, 1]), with the diagonal a calibrated method follows. PNG bytes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="calibrated")
    for index, (name, points) in enumerate(curves.items()):
        nominal, empirical = zip(*sorted(points))
        ax.plot(nominal, empirical, marker="osD^v"[index % 5], label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("empirical coverage of the true pixels")
    ax.set_title(title or "reliability of the pixel intervals", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return figure_png(fig)
