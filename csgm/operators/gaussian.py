"""Dense Gaussian measurements: the paper's A with i.i.d. N(0, 1) entries (or N(0, 1/m))."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from csgm.errors import check_flag
from csgm.operators.base import LinearOperator, resolve_count
from csgm.seeding import seeded_rng

__all__ = ["GaussianOperator", "gaussian_matrix", "entry_scale"]


def gaussian_matrix(m: int, n: int, seed: int, normalize: bool, key: str = "gaussian") -> torch.Tensor:
    """The (m, n) float32 matrix with N(0, 1) entries (N(0, 1/m) with ``normalize``), drawn on the CPU in
    float64 from (key, seed, m): the same A in every process and on every device."""
    matrix = torch.randn(m, n, generator=seeded_rng(key, seed, m), dtype=torch.float64)
    if normalize:
        matrix /= math.sqrt(m)
    return matrix.float()


def entry_scale(matrix: torch.Tensor) -> float:
    """The root mean square of a matrix's entries (1 for the paper's N(0, 1) matrix, 1/sqrt(m) normalised)."""
    return matrix.double().pow(2).mean().sqrt().item()


class GaussianOperator(LinearOperator):
    """y = A x with A (m, n), A_ij ~ N(0, 1) (paper default) or N(0, 1/m) with ``normalize``.

    The two are equivalent up to scale: the normalised A is the paper's A divided by sqrt(m), so
    noise std sigma with the paper's A corresponds to sigma / sqrt(m) with the normalised one.
    A is drawn on the CPU in float64 from (seed, m), so every device and process gets the same A.
    """

    name = "gaussian"

    def __init__(self, image_shape: Sequence[int], m: int | float, seed: int = 0, normalize: bool = False) -> None:
        super().__init__(image_shape)
        self.m = self.output_size = resolve_count(m, self.n, "m")
        self.register_buffer(
            "matrix", gaussian_matrix(self.m, self.n, seed, check_flag("operator.normalize", normalize))
        )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).to(self.matrix.dtype) @ self.matrix.T

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y.to(self.matrix.dtype) @ self.matrix).view(-1, *self.image_shape)

    def to_dense(self, max_pixels: int = 4096, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return self.matrix.to(dtype)
