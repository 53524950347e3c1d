"""Per-image quality metrics on the [0, 1] scale, and the mean with its 95% interval."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

__all__ = ["per_pixel_error", "psnr", "ssim", "measurement_error", "mean_ci95", "image_metrics"]


def per_pixel_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paper's error: ||x_hat - x||^2 / n per image, n = C * H * W. Shape (B,)."""
    return (x_hat - x).pow(2).flatten(1).mean(1)


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image with data range 1: -10 log10(per-pixel error) (inf for an exact reconstruction)."""
    return -10.0 * torch.log10(per_pixel_error(x_hat, x))


def ssim(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SSIM per image as Wang et al. (2004) define it: Gaussian window 11 (sigma 1.5), data range 1, the SSIM
    map averaged over the positions where the window lies inside the image and over channels (equal to
    scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``). Images
    under 11 px use the largest odd window that fits."""
    side = min(11, *x.shape[-2:])
    kernel = max(3, side if side % 2 else side - 1)
    _, full = structural_similarity_index_measure(x_hat, x, data_range=1.0, reduction="none", kernel_size=kernel,
                                                  return_full_image=True)
    pad = (kernel - 1) // 2
    return full[..., pad:-pad, pad:-pad].flatten(1).mean(1)


def measurement_error(operator, x_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||A x_hat - y||^2 per image."""
    return (operator(x_hat) - y).pow(2).sum(1)


def image_metrics(x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image per-pixel error, PSNR and SSIM (float64, CPU)."""
    x_hat, x = x_hat.double().cpu(), x.double().cpu()
    return {"mse": per_pixel_error(x_hat, x), "psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x)}


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval, 1.96 * std / sqrt(N) (0 for one value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)
