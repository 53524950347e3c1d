"""Phase retrieval: y = |A x| with a Gaussian A (signs lost), m up to 8n (oversampling)."""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import check_flag
from csgm.operators.base import Operator, resolve_count
from csgm.operators.gaussian import gaussian_matrix

__all__ = ["PhaseRetrievalOperator", "MAX_OVERSAMPLING"]

MAX_OVERSAMPLING = 8  # m may reach 8n, as phase retrieval needs more measurements than unknowns


class PhaseRetrievalOperator(Operator):
    """y = |A x| with A (m, n), A_ij ~ N(0, 1) (or N(0, 1/m) with ``normalize``), drawn on the CPU in float64
    from (seed, m). Nonlinear: generative solvers recover x through autograd (Hand, Leong, Voroninski 2018);
    the sign of every measurement is lost, so x and -x measure alike (images in [0, 1] break the tie).
    ``m`` is a count in [1, 8n] or a fraction of n in (0, 1].
    """

    name = "phase_retrieval"
    nonnegative = True

    def __init__(self, image_shape: Sequence[int], m: int | float, seed: int = 0, normalize: bool = False) -> None:
        super().__init__(image_shape)
        self.m = self.output_size = resolve_count(m, self.n if isinstance(m, float) else MAX_OVERSAMPLING * self.n, "m")
        matrix = gaussian_matrix(
            self.m, self.n, seed, check_flag("operator.normalize", normalize), key="phase_retrieval"
        )
        self.register_buffer("matrix", matrix)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1).to(self.matrix.dtype) @ self.matrix.T).abs()
