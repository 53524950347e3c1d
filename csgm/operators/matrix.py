"""A dense matrix given by the user (a calibrated instrument, or A saved from another run)."""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError
from csgm.operators.base import LinearOperator

__all__ = ["MatrixOperator"]


class MatrixOperator(LinearOperator):
    """y = A x with a given (m, n) matrix, n = C * H * W of ``image_shape`` (m may exceed n)."""

    name = "matrix"

    def __init__(self, image_shape: Sequence[int], matrix: torch.Tensor) -> None:
        super().__init__(image_shape)
        if matrix.ndim != 2 or matrix.shape[1] != self.n:
            raise CsgmError(
                f"the matrix has shape {tuple(matrix.shape)} but the images are "
                f"{'x'.join(map(str, self.image_shape))} (n = {self.n}); A must have n = {self.n} columns"
            )
        self.m = self.output_size = int(matrix.shape[0])
        self.register_buffer("matrix", matrix.float())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).to(self.matrix.dtype) @ self.matrix.T

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y.to(self.matrix.dtype) @ self.matrix).view(-1, *self.image_shape)

    def to_dense(self, max_pixels: int = 4096, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return self.matrix.to(dtype)
