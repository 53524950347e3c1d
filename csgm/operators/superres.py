"""Super-resolution: block averaging by a factor (the paper's) or Gaussian blur then subsampling."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from csgm.errors import CsgmError, check_choice
from csgm.operators.base import LinearOperator
from csgm.operators.blur import conv_same, conv_same_adjoint, gaussian_kernel

__all__ = ["SuperResOperator"]

MODES = ("average", "gaussian")


class SuperResOperator(LinearOperator):
    """Low-resolution image of (C, H/f, W/f); m = n / f^2.

    ``average``: mean over f x f blocks. ``gaussian``: blur with std ``sigma`` (default f / 2)
    then keep every f-th pixel.
    """

    name = "superres"
    nonnegative = True

    def __init__(
        self, image_shape: Sequence[int], factor: int = 4, mode: str = "average", sigma: float | None = None
    ) -> None:
        super().__init__(image_shape)
        check_choice("superres mode", mode, MODES)
        c, h, w = self.image_shape
        if not isinstance(factor, int) or factor < 1 or h % factor or w % factor:
            raise CsgmError(f"superres factor={factor} must be a positive integer that divides the image size {h}x{w}")
        self.factor, self.mode = factor, mode
        self.low_shape = (c, h // factor, w // factor)
        self.m = self.output_size = c * (h // factor) * (w // factor)
        self.register_buffer("kernel", gaussian_kernel(sigma or factor / 2).float())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.factor
        if self.mode == "average":
            return F.avg_pool2d(x, f).flatten(1)
        return conv_same(x, self.kernel)[..., ::f, ::f].flatten(1)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        f = self.factor
        low = y.view(-1, *self.low_shape)
        if self.mode == "average":
            return low.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3) / f**2
        up = low.new_zeros(len(low), *self.image_shape)
        up[..., ::f, ::f] = low
        return conv_same_adjoint(up, self.kernel)
