"""Per-image quality metrics on the [0, 1] scale, and the mean with its 95% interval."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

__all__ = ["per_pixel_error", "psnr", "ssim", "mean_ci95", "image_metrics", "match_norm", "std_error_correlation"]


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
    _, full = structural_similarity_index_measure(
        x_hat, x, data_range=1.0, reduction="none", kernel_size=kernel, return_full_image=True
    )
    pad = (kernel - 1) // 2
    return full[..., pad:-pad, pad:-pad].flatten(1).mean(1)


def match_norm(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x_hat rescaled to the norm of x per image, for measurements that lose the norm (1 bit without dither):
    its per-pixel error is ||x||^2 / n * ||x / ||x|| - x_hat / ||x_hat||||^2, the literature's error on x / ||x||
    in the units of x. A zero x_hat stays zero."""
    norms = x_hat.flatten(1).norm(dim=1)
    factor = torch.where(norms > 0, x.flatten(1).norm(dim=1) / norms.clamp_min(1e-30), torch.zeros_like(norms))
    return x_hat * factor.view(-1, *[1] * (x_hat.ndim - 1))


def image_metrics(x_hat: torch.Tensor, x: torch.Tensor, scale_invariant: bool = False) -> dict[str, torch.Tensor]:
    """Per-image per-pixel error, PSNR and SSIM (float64, CPU); with ``scale_invariant``, of x_hat rescaled
    to the norm of x (``match_norm``)."""
    x_hat, x = x_hat.double().cpu(), x.double().cpu()
    if scale_invariant:
        x_hat = match_norm(x_hat, x)
    return {"mse": per_pixel_error(x_hat, x), "psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x)}


def std_error_correlation(pixel_std: torch.Tensor, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per image, the Pearson correlation over pixels of a posterior std map with the absolute error |x_hat - x|:
    whether the uncertainty points at the pixels that are wrong (NaN where either map is constant)."""
    a = pixel_std.double().flatten(1)
    b = (x_hat.double() - x.double()).abs().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


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
