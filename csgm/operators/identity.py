"""Identity: y = x, for projection onto the range of G (representation error)."""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.operators.base import LinearOperator

__all__ = ["IdentityOperator"]


class IdentityOperator(LinearOperator):
    """y = x flattened; m = n."""

    name = "identity"
    nonnegative = True

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__(image_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y.view(-1, *self.image_shape)
