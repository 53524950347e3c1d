"""Binary iterative hard thresholding (Jacques, Laska, Boufounos, Baraniuk 2013): the 1-bit baseline.

For y = sign(A x + tau) (operator=one_bit): c <- H_k(c + (step / m) Psi A^T (y - sign(A Psi^T c + tau))), x = Psi^T c
with c k-sparse in an orthonormal basis (DCT by default), all images (and all candidate k of the validation
search) at once, each row with its own k. Without dither only the direction of x is measured: the result
is normalised to ||x|| = 1 (errors are then taken on x / ||x||); with dither the iterate keeps its scale.
"""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError, check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.operators import Operator
from csgm.operators.gaussian import entry_scale
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.proximal import require_resolved
from csgm.solvers.sparsity_bases import build_basis

__all__ = ["BIHTSolver", "hard_threshold"]


def hard_threshold(c: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Keep the ``keep[i]`` largest-magnitude entries of row i of c (B, n), zero the others."""
    order = c.abs().argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(c.shape[1], device=c.device).expand_as(order))
    return torch.where(ranks < keep.view(-1, 1), c, torch.zeros_like(c))


def _check_sparsity(value: int | str) -> int | str:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CsgmError(
            f"solver.sparsity={value!r} must be an integer >= 1, or auto to choose it on the validation split"
        )
    return value


class BIHTSolver(Solver):
    """BIHT for the ``one_bit`` operator (no generator). ``sparsity: auto`` chooses k per m on the validation
    split from ``sparsity_grid``."""

    name = "biht"
    work_options = {"iterations": 1}
    tunable = "sparsity"
    grid_option = "sparsity_grid"

    def __init__(
        self,
        sparsity: int | str = "auto",
        basis: str = "dct",
        wavelet: str = "db4",
        levels: int = 2,
        iterations: int = 300,
        step: float = 1.0,
        sparsity_grid: Sequence[int] = (),
        label: str | None = None,
    ) -> None:
        self.sparsity = _check_sparsity(sparsity)
        check_range("solver.iterations", iterations, 1)
        check_range("solver.step", step, 0, low_open=True)
        self.sparsity_grid = [_check_sparsity(int(k)) for k in sparsity_grid]
        self.basis, self.basis_options = basis, ({"wavelet": wavelet, "levels": levels} if basis == "wavelet" else {})
        build_basis(basis, (1, 8, 8), **self.basis_options)  # an unknown basis fails here, in one line
        self.iterations, self.step = int(iterations), float(step)
        self.label = label or self.name

    def label_tags(self) -> list[str]:
        """The sparsity basis where it is not the default one (``pixel``, ``wavelet``)."""
        return [*super().label_tags(), *self.tag_unless_default("basis", self.basis, self.basis)]

    def check_operator(self, operator: Operator) -> None:
        if not (operator.quantized and getattr(operator, "bits", None) == 1):
            raise CsgmError(
                f"solver {self.label!r} recovers from 1-bit measurements (operator=one_bit); "
                f"operator {operator.name!r} is not one: use solver=csgm"
            )
        if self.sparsity != "auto" and self.sparsity > operator.n:
            raise CsgmError(
                f"solver.sparsity={self.sparsity} is more coefficients than the image has (n = {operator.n}); "
                f"give a sparsity in [1, {operator.n}]"
            )
        if self.needs_tuning and all(k > operator.n for k in self.sparsity_grid):
            raise CsgmError(
                f"solver.sparsity_grid={self.sparsity_grid} holds no sparsity the image allows (n = {operator.n}); "
                f"give values in [1, {operator.n}] (a value above n keeps every coefficient, as n does)"
            )

    @torch.no_grad()
    def solve_with(self, y: torch.Tensor, measurement: MeasurementModel | Operator, keep: torch.Tensor) -> SolverOutput:
        """Solve every row of y with its own sparsity ``keep`` (used by the batched validation search)."""
        measurement = self.accepted(measurement)
        operator = measurement.operator
        matrix, tau = operator.linear_part.matrix.to(y.dtype), operator.tau.to(y.dtype)
        basis = build_basis(self.basis, operator.image_shape, **self.basis_options).to(device=y.device)
        signs = torch.sign(y)
        m = matrix.shape[0]
        step = self.step / (m * entry_scale(matrix))
        c = torch.zeros(len(y), operator.n, dtype=y.dtype, device=y.device)
        for _ in range(self.iterations):
            x = basis.synthesis(c).flatten(1)
            mismatch = signs - torch.where(x @ matrix.T + tau > 0, 1.0, -1.0).to(y.dtype)
            c = hard_threshold(c + step * basis.analysis((mismatch @ matrix).view(-1, *operator.image_shape)), keep)
        x = basis.synthesis(c)
        if operator.scale_invariant:
            x = x / x.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)
            x = x * torch.where(x.flatten(1).sum(1) < 0, -1.0, 1.0).to(x.dtype).view(-1, 1, 1, 1)
        x_hat = x.clamp(0, 1)
        iterations = torch.full((len(y),), self.iterations, dtype=torch.long)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=iterations,
            dropped_restarts=torch.zeros(len(y), dtype=torch.long),
        )

    def solve_candidates(
        self,
        candidates: Sequence[dict],
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> list[torch.Tensor]:
        """One batched run for every k of the search: each (candidate, image) is its own row."""
        keep = torch.tensor([c["sparsity"] for c in candidates], device=y.device).repeat_interleave(len(y))
        return list(self.solve_with(y.repeat(len(candidates), 1), measurement, keep).x_hat.split(len(y)))

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        require_resolved("sparsity", self.sparsity)
        return self.solve_with(y, measurement, torch.full((len(y),), self.sparsity, device=y.device))
