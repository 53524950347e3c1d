"""Gaussian blur (deblurring), matrix-free by depthwise convolution with zero padding."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from csgm.errors import CsgmError, check_range
from csgm.operators.base import LinearOperator

__all__ = ["BlurOperator", "gaussian_kernel", "conv_same", "conv_same_adjoint"]


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel (size x size, odd; default 2 * ceil(3 sigma) + 1)."""
    check_range("operator.sigma", sigma, 0, low_open=True)
    size = size or 2 * math.ceil(3 * sigma) + 1
    if size < 1 or size % 2 == 0:
        raise CsgmError(f"kernel_size={size} must be a positive odd integer")
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return k / k.sum()


def conv_same(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 'same' convolution of (B, C, H, W) with one (k, k) kernel, zero padding."""
    channels = x.shape[1]
    weight = kernel.to(x.dtype).expand(channels, 1, *kernel.shape)
    return F.conv2d(x, weight, padding=kernel.shape[-1] // 2, groups=channels)


def conv_same_adjoint(y: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Exact adjoint of ``conv_same`` (transposed convolution with the same weights)."""
    channels = y.shape[1]
    weight = kernel.to(y.dtype).expand(channels, 1, *kernel.shape)
    return F.conv_transpose2d(y, weight, padding=kernel.shape[-1] // 2, groups=channels)


class BlurOperator(LinearOperator):
    """y = k * x (Gaussian kernel of width ``sigma`` pixels, zero boundary); m = n."""

    name = "blur"
    nonnegative = True

    def __init__(self, image_shape: Sequence[int], sigma: float = 1.5, kernel_size: int | None = None) -> None:
        super().__init__(image_shape)
        kernel = gaussian_kernel(sigma, kernel_size)
        if kernel.shape[-1] > 2 * min(self.image_shape[1:]) - 1:
            raise CsgmError(
                f"kernel_size={kernel.shape[-1]} is too large for {self.image_shape[1]}x{self.image_shape[2]} images; "
                "use a smaller sigma or kernel_size"
            )
        self.register_buffer("kernel", kernel.float())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_same(x, self.kernel).flatten(1)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return conv_same_adjoint(y.view(-1, *self.image_shape), self.kernel)
