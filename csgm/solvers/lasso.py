"""Lasso baseline: min_x 0.5 ||A x - y||^2 + lambda ||Psi x||_1 by batched FISTA in an orthonormal basis."""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.operators import LinearOperator
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.bases import Basis
from csgm.solvers.proximal import BasisCache, check_positive_lambda, soft_threshold

__all__ = ["LassoSolver", "fista"]


def fista(y: torch.Tensor, operator: LinearOperator, basis: Basis, lam: torch.Tensor, max_iterations: int, tol: float,
          lipschitz: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FISTA with adaptive (gradient) restart on c = Psi x, every row of y its own problem with its own lambda.

    Each row stops once ||c_k - c_{k-1}|| <= tol * ||c_k||; stopped rows stay fixed, so a row's result
    never depends on the other rows. Returns (coefficients (B, n), iterations (B,), converged (B,)).
    """
    batch = len(y)
    c = torch.zeros(batch, basis.n, dtype=y.dtype, device=y.device)
    v, t = c.clone(), torch.ones(batch, 1, dtype=y.dtype, device=y.device)
    step, threshold = 1.0 / lipschitz, lam.view(-1, 1).to(y.dtype) / lipschitz
    active = torch.ones(batch, dtype=torch.bool, device=y.device)
    iterations = torch.full((batch,), max_iterations, dtype=torch.long, device=y.device)
    for k in range(max_iterations):
        gradient = basis.analysis(operator.adjoint(operator(basis.synthesis(v)) - y))
        c_new = soft_threshold(v - step * gradient, threshold)
        restart = ((v - c_new) * (c_new - c)).sum(1, keepdim=True) > 0
        t_new = torch.where(restart, torch.ones_like(t), (1 + torch.sqrt(1 + 4 * t * t)) / 2)
        momentum = torch.where(restart, torch.zeros_like(t), (t - 1) / t_new)
        change = (c_new - c).norm(dim=1) <= tol * c_new.norm(dim=1).clamp_min(1e-12)
        keep = active.view(-1, 1)
        v = torch.where(keep, c_new + momentum * (c_new - c), v)
        c = torch.where(keep, c_new, c)
        t = torch.where(keep, t_new, t)
        stopped = active & change
        iterations[stopped] = k + 1
        active &= ~change
        if not bool(active.any()):
            break
    return c, iterations, ~active | (iterations < max_iterations)


class LassoSolver(Solver):
    """Sparse recovery baseline (the paper's Lasso): FISTA on all images at once, output clipped to [0, 1].

    The step is 1 / ||A||^2 (power method; Psi is orthonormal). ``lambda_l1: auto`` chooses lambda per m
    on the validation split (csgm.recovery.tuning); rows that hit ``max_iterations`` are reported with
    status ``not_converged``.
    """

    name = "lasso"
    needs_generator = False
    tunable = "lambda_l1"

    def __init__(self, lambda_l1: float | str = "auto", basis: str = "pixel", wavelet: str = "db4", levels: int = 2,
                 max_iterations: int = 2000, tol: float = 1e-5, lambda_grid: Sequence[float] = (), label: str | None = None) -> None:
        self.lambda_l1 = check_positive_lambda("lambda_l1", lambda_l1)
        if not max_iterations >= 1 or not tol > 0:
            raise CsgmError(f"solver.max_iterations={max_iterations} must be >= 1 and solver.tol={tol} > 0")
        self.bases = BasisCache(basis, wavelet, levels)
        self.max_iterations, self.tol = int(max_iterations), float(tol)
        self.lambda_grid = [float(v) for v in lambda_grid]
        self.label = label or self.name

    def solve_with(self, y: torch.Tensor, operator: LinearOperator, lam: torch.Tensor) -> SolverOutput:
        """Solve every row of y with its own lambda (used by the batched lambda search)."""
        basis, lipschitz = self.bases.get(operator)
        coefficients, iterations, converged = fista(y, operator, basis, lam, self.max_iterations, self.tol, lipschitz)
        x_hat = basis.synthesis(coefficients).clamp(0, 1)
        loss = (operator(x_hat) - y).pow(2).sum(1)
        return SolverOutput(x_hat=x_hat, measurement_loss=loss, iterations=iterations.cpu(),
                            dropped_restarts=torch.zeros(len(y), dtype=torch.long), converged=converged.cpu())

    def solve(self, y: torch.Tensor, operator: LinearOperator, image_ids: Sequence[int],
              generator: Generator | None = None, seed: int = 0) -> SolverOutput:
        if self.lambda_l1 == "auto":
            raise CsgmError("lambda_l1=auto must be resolved on the validation split first (recover.py does this); "
                            "or set solver.lambda_l1 to a number")
        return self.solve_with(y, operator, torch.full((len(y),), self.lambda_l1, dtype=y.dtype, device=y.device))
