"""The LinearOperator contract shared by every forward model y = A x."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from csgm.errors import CsgmError
from csgm.seeding import seeded_rng

__all__ = ["Operator", "LinearOperator", "location_mask", "resolve_count"]


def resolve_count(value: int | float | None, maximum: int, what: str, unit: int = 1) -> int:
    """Turn a count (int >= 1) or a fraction of ``maximum`` (float in (0, 1]) into a count in [unit, maximum].

    ``unit`` > 1 requires a multiple of ``unit`` (one value per channel); a fraction is rounded to one.
    """
    if value is None:
        raise CsgmError(f"{what} is required: give a count in [{unit}, {maximum}] or a fraction in (0, 1]")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CsgmError(
            f"{what}={value!r} is not a number; give a count in [{unit}, {maximum}] or a fraction in (0, 1]"
        )
    if isinstance(value, float):
        if not 0.0 < value <= 1.0:
            raise CsgmError(
                f"{what}={value} is not a fraction in (0, 1]; give a fraction in (0, 1] or an integer count"
            )
        return max(unit, int(round(value * maximum / unit)) * unit)
    if not unit <= value <= maximum:
        raise CsgmError(f"{what}={value} is out of range; it must be in [{unit}, {maximum}] for this image shape")
    if value % unit:
        lower = value // unit * unit
        raise CsgmError(
            f"{what}={value} is not a multiple of the {unit} image channels; use {lower or unit} or {lower + unit}"
        )
    return int(value)


def location_mask(kept: torch.Tensor, image_shape: Sequence[int]) -> torch.Tensor:
    """The (H, W) 0/1 mask of the kept flat locations (indices into H * W)."""
    mask = torch.zeros(image_shape[1] * image_shape[2], device=kept.device)
    mask[kept] = 1.0
    return mask.view(*image_shape[1:])


class Operator(nn.Module):
    """A differentiable forward map A from images (B, C, H, W) to real measurement vectors (B, output_size).

    Subclasses implement ``_forward`` and set ``m`` (the measurement count the user chooses and results
    report; it may exceed n for nonlinear maps) and ``output_size`` (the length of the real vector y).
    Generative solvers only need ``forward`` (gradients through autograd); solvers that need the
    adjoint declare ``needs_linear_operator`` and refuse an operator whose ``linear`` is False.
    Matrices, masks and kernels are buffers, so ``.to(device/dtype)`` moves them.
    """

    name: str = "operator"
    linear: bool = False
    nonnegative: bool = False  # A x >= 0 for images x >= 0 (needed by Poisson noise)
    scale_invariant: bool = False  # y unchanged by scaling x (errors are then measured on x / ||x||)
    quantized: bool = False  # y is a quantiser's cell; such operators also give ``cell(y)`` and ``dequantized(y)``

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__()
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise CsgmError(f"image_shape={tuple(image_shape)} is not (C, H, W) with positive sizes")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.m = self.n
        self.output_size = self.n

    @property
    def n(self) -> int:
        """Number of pixels C * H * W."""
        return math.prod(self.image_shape)

    @property
    def device(self) -> torch.device:
        """Where the operator's buffers live (CPU for buffer-free operators)."""
        ref = next(iter(self.buffers()), None)
        return ref.device if ref is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the operator's buffers (float32 for operators without float buffers)."""
        return next((b.dtype for b in self.buffers() if b.is_floating_point()), torch.float32)

    def _check_image(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise CsgmError(
                f"{self.name} operator was built for images of shape (B, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}; build the operator for this image shape"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = A(x): (B, C, H, W) -> (B, output_size)."""
        self._check_image(x)
        return self._forward(x)

    def pre_noise(self, x: torch.Tensor) -> torch.Tensor:
        """The values the noise is added to (A x here; quantisers add noise before quantising)."""
        return self(x)

    def post_noise(self, values: torch.Tensor) -> torch.Tensor:
        """What the instrument records from the noisy values (themselves here; a quantiser's cells)."""
        return values

    def check_measurements(self, y: torch.Tensor, where: str) -> None:
        """Refuse recorded measurements y (N, output_size) that this operator cannot give, naming ``where`` they
        came from; any real values here (quantisers record only their levels)."""

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class LinearOperator(Operator):
    """A linear Operator: also ``adjoint`` (A^T y), a dense view and the spectral norm (FISTA step sizes).

    Subclasses implement ``_forward`` and ``_adjoint``; ``output_size`` equals ``m`` except for complex
    measurements, which store real and imaginary parts.
    """

    linear = True

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """A^T y: (B, output_size) -> (B, C, H, W)."""
        if y.ndim != 2 or y.shape[1] != self.output_size:
            raise CsgmError(
                f"{self.name} operator expects measurements of shape (B, {self.output_size}), got {tuple(y.shape)}"
            )
        return self._adjoint(y)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dense(self, max_pixels: int = 4096, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The explicit (output_size, n) matrix, built column by column; for small images (tests)."""
        if self.n > max_pixels:
            raise CsgmError(
                f"to_dense builds an {self.output_size} x {self.n} matrix; n = {self.n} exceeds max_pixels={max_pixels}"
            )
        eye = torch.eye(self.n, dtype=dtype, device=self.device).view(self.n, *self.image_shape)
        return self._forward(eye).T.contiguous()

    @torch.no_grad()
    def norm_squared(self, iterations: int = 100, seed: int = 0, tol: float = 1e-7) -> float:
        """Power-method estimate of ||A||_2^2, the largest eigenvalue of A^T A (FISTA step sizes)."""
        x = torch.randn(1, *self.image_shape, generator=seeded_rng("power", seed), dtype=torch.float64)
        x = (x / x.norm()).to(device=self.device, dtype=self.dtype)
        value = 0.0
        for _ in range(iterations):
            x = self._adjoint(self._forward(x))
            new_value = float(x.norm())
            x = x / new_value
            if abs(new_value - value) <= tol * new_value:
                return new_value
            value = new_value
        return value
