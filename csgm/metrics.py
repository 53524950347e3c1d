"""Per-image quality metrics on the [0, 1] scale, and the mean with its 95% interval."""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["per_pixel_error", "psnr", "ssim", "mean_ci95", "image_metrics", "match_norm", "std_error_correlation"]


def per_pixel_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paper's error: ||x_hat - x||^2 / n per image, n = C * H * W. Shape (B,)."""
    return (x_hat - x).pow(2).flatten(1).mean(1)


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image with data range 1: -10 log10(per-pixel error) (inf for an exact reconstruction)."""
    return -10.0 * torch.log10(per_pixel_error(x_hat, x))


_SSIM_SIGMA, _SSIM_TAPS = 1.5, 11  # Wang et al.'s Gaussian window, 11 taps as torchmetrics takes for sigma 1.5


def _window_matrix(size: int, kernel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(out, size) matrix of the 1-D Gaussian window (11 taps, sigma 1.5, normalised) centred on each pixel at
    least (kernel - 1) / 2 px from the border, taps beyond the border reflected onto the image (reflect padding):
    ``matrix @ column`` is the window's weighted mean at those positions. The 2-D window is separable."""
    half, margin = (_SSIM_TAPS - 1) // 2, (kernel - 1) // 2
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    taps = torch.exp(-((offsets / _SSIM_SIGMA) ** 2) / 2)
    taps = taps / taps.sum()
    centres = torch.arange(margin, size - margin)
    columns = centres[:, None] + torch.arange(-half, half + 1)[None, :]
    columns = columns.abs()  # reflect at 0 ...
    columns = torch.where(columns > size - 1, 2 * (size - 1) - columns, columns)  # ... and at size - 1
    matrix = torch.zeros(len(centres), size, dtype=torch.float64)
    matrix.scatter_add_(1, columns, taps.expand(len(centres), -1).contiguous())
    return matrix.to(dtype=dtype, device=device)


def ssim(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SSIM per image as Wang et al. (2004) define it: Gaussian window 11 (sigma 1.5), data range 1, the SSIM
    map averaged over the positions where the window lies inside the image and over channels (equal to
    scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``). Images
    under 11 px average the map over the positions at least (k - 1) / 2 px from the border, k the largest odd
    side that fits, the window reflected at the border (as torchmetrics' full map does there).

    The window is separable: the local means of x_hat, x, x_hat², x² and x_hat x are two 1-D passes, each one
    batched matrix product (``_window_matrix``), instead of an 11 x 11 convolution."""
    height, width = x.shape[-2:]
    side = min(_SSIM_TAPS, height, width)
    kernel = max(3, side if side % 2 else side - 1)
    rows = _window_matrix(height, kernel, x.dtype, x.device)
    columns = _window_matrix(width, kernel, x.dtype, x.device)
    stacked = torch.stack((x_hat, x, x_hat * x_hat, x * x, x_hat * x))  # (5, B, C, H, W)
    mu_hat, mu, hat_sq, sq, cross = rows @ stacked @ columns.T
    c1, c2 = 0.01**2, 0.03**2
    mu_hat_sq, mu_sq, mu_cross = mu_hat.pow(2), mu.pow(2), mu_hat * mu
    var_hat, var = (hat_sq - mu_hat_sq).clamp_min(0.0), (sq - mu_sq).clamp_min(0.0)
    covariance = cross - mu_cross
    full = ((2 * mu_cross + c1) * (2 * covariance + c2)) / ((mu_hat_sq + mu_sq + c1) * (var_hat + var + c2))
    return full.flatten(1).mean(1)


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
