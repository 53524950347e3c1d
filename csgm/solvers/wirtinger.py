"""Wirtinger flow (Candes, Li, Soltanolkotabi 2015) for phase retrieval y = |A x|: the classical baseline.

Real case, all images at once: spectral initialisation (the leading eigenvector of (1/m) sum_i y_i^2 a_i a_i^T
by power iteration, scaled to the norm the intensities imply), then gradient steps on
f(x) = (1/4m) sum_i ((a_i^T x)^2 - y_i^2)^2 with the paper's step schedule mu_t / ||x_0||^2,
mu_t = min(1 - exp(-t / t0), mu_max); a step that would raise an image's loss is refused and that image's
steps are halved (monotone, so WF never diverges where m is too small for it). No prior on x: it needs m of a few times n, where CSGM needs far fewer.
The sign of x is not identifiable; images are nonnegative, so the sign with the larger pixel sum is kept.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from csgm.errors import CsgmError, check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.operators import Operator
from csgm.operators.gaussian import entry_scale
from csgm.seeding import seeded_rng
from csgm.solvers.base import Solver, SolverOutput

__all__ = ["WirtingerFlowSolver", "spectral_init"]


def spectral_init(
    matrix: torch.Tensor, intensities: torch.Tensor, starts: torch.Tensor, iterations: int
) -> torch.Tensor:
    """x0 (B, n) = lambda v: v the leading eigenvector of (1/m) A^T diag(b) A by power iteration from ``starts``,
    lambda^2 = n sum_i b_i / sum_i ||a_i||^2 (the norm of x the intensities b = y^2 imply)."""
    m, n = matrix.shape
    v = starts / starts.norm(dim=1, keepdim=True)
    for _ in range(iterations):
        v = ((v @ matrix.T) * intensities) @ matrix / m
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)
    scale = torch.sqrt(n * intensities.sum(1) / matrix.pow(2).sum())
    return v * scale[:, None]


class WirtingerFlowSolver(Solver):
    """Wirtinger flow with spectral initialisation for the ``phase_retrieval`` operator (no generator)."""

    name = "wirtinger_flow"
    work_options = {"iterations": 1, "power_iterations": 1}

    def __init__(
        self,
        iterations: int = 2000,
        mu_max: float = 0.2,
        warmup: float = 330.0,
        power_iterations: int = 100,
        label: str | None = None,
    ) -> None:
        check_range("solver.iterations", iterations, 1)
        check_range("solver.mu_max", mu_max, 0, low_open=True)
        check_range("solver.warmup", warmup, 0, low_open=True)
        check_range("solver.power_iterations", power_iterations, 1)
        self.iterations, self.mu_max, self.warmup = int(iterations), float(mu_max), float(warmup)
        self.power_iterations = int(power_iterations)
        self.label = label or self.name

    def check_operator(self, operator: Operator) -> None:
        if operator.name != "phase_retrieval" or not hasattr(operator, "matrix"):
            raise CsgmError(
                f"solver {self.label!r} recovers from magnitudes y = |A x| (operator=phase_retrieval); "
                f"operator {operator.name!r} is not one: use solver=csgm"
            )

    @torch.no_grad()
    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        measurement = self.accepted(measurement)
        operator = measurement.operator
        matrix = operator.matrix.to(y.dtype)
        # rescale so that E[a a^T] = I, the setting of the paper's step rule
        unit = entry_scale(matrix)
        matrix, intensities = matrix / unit, (y / unit).pow(2)
        starts = torch.stack(
            [
                torch.randn(operator.n, generator=seeded_rng("wirtinger_flow", seed, int(i)), dtype=torch.float64)
                for i in image_ids
            ]
        ).to(device=y.device, dtype=y.dtype)
        x = spectral_init(matrix, intensities, starts, self.power_iterations)
        norm0 = x.pow(2).sum(1, keepdim=True).clamp_min(1e-30)
        m = matrix.shape[0]
        ax = x @ matrix.T
        loss = (ax.pow(2) - intensities).pow(2).sum(1)
        shrink = torch.ones_like(norm0)  # per image: halved whenever a step would raise the loss (no divergence)
        for t in range(1, self.iterations + 1):
            gradient = ((ax.pow(2) - intensities) * ax) @ matrix / m
            mu = min(1 - math.exp(-t / self.warmup), self.mu_max)
            x_new = x - shrink * mu / norm0 * gradient
            ax_new = x_new @ matrix.T
            loss_new = (ax_new.pow(2) - intensities).pow(2).sum(1)
            accept = (loss_new <= loss)[:, None]
            x, ax = torch.where(accept, x_new, x), torch.where(accept, ax_new, ax)
            loss = torch.where(accept[:, 0], loss_new, loss)
            shrink = torch.where(accept, shrink, shrink / 2)
        x = torch.where(x.sum(1, keepdim=True) < 0, -x, x)
        x_hat = x.view(-1, *operator.image_shape).clamp(0, 1)
        iterations = torch.full((len(y),), self.iterations, dtype=torch.long)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=iterations,
            dropped_restarts=torch.zeros(len(y), dtype=torch.long),
        )
