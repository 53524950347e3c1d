"""Lasso baseline: min_x 0.5 ||A x - y||^2 + lambda ||Psi x||_1 by batched FISTA in an orthonormal basis."""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.operators import LinearOperator, Operator
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.sparsity_bases import Basis
from csgm.solvers.proximal import BasisCache, check_positive_lambda, require_resolved, soft_threshold
from csgm.progress import report_steps

__all__ = ["LassoSolver", "fista", "duality_gap"]


def duality_gap(
    c: torch.Tensor, y: torch.Tensor, operator: LinearOperator, basis: Basis, lam: torch.Tensor
) -> torch.Tensor:
    """Per-row gap P(c) - D(theta) >= 0 of 0.5 ||A Psi^T c - y||^2 + lam ||c||_1, with the dual point
    theta = s (y - A Psi^T c) scaled into ||Psi A^T theta||_inf <= lam (as scikit-learn's coordinate descent)."""
    residual = y - operator(basis.synthesis(c))
    correlation = basis.analysis(operator.adjoint(residual)).abs().amax(1)
    scale = torch.clamp(lam / correlation.clamp_min(1e-30), max=1.0)
    primal = 0.5 * residual.pow(2).sum(1) + lam * c.abs().sum(1)
    dual = 0.5 * y.pow(2).sum(1) - 0.5 * (y - scale[:, None] * residual).pow(2).sum(1)
    return primal - dual


def fista(
    y: torch.Tensor,
    operator: LinearOperator,
    basis: Basis,
    lam: torch.Tensor,
    max_iterations: int,
    tol: float,
    lipschitz: float,
    check_every: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FISTA with adaptive (gradient) restart on c = Psi x, every row of y its own problem with its own lambda.

    Every ``check_every`` iterations each row's duality gap is checked, and a row stops once it is
    <= tol * ||y||^2 (scikit-learn's criterion). Stopped rows leave the batch, so the work follows each
    row's own iteration count and a row's result never depends on the other rows.
    Returns (coefficients (B, n), iterations (B,), converged (B,)).
    """
    lam = lam.view(-1).to(y.dtype)
    result = torch.zeros(len(y), basis.n, dtype=y.dtype, device=y.device)
    iterations = torch.full((len(y),), max_iterations, dtype=torch.long, device=y.device)
    converged = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    rows = torch.arange(len(y), device=y.device)  # the rows still running, in the order of the tensors below
    y_run, lam_run = y, lam
    c, v = result.clone(), result.clone()
    t = torch.ones(len(y), 1, dtype=y.dtype, device=y.device)
    step = 1.0 / lipschitz
    for k in range(max_iterations):
        report_steps(k, max_iterations)
        gradient = basis.analysis(operator.adjoint(operator(basis.synthesis(v)) - y_run))
        c_new = soft_threshold(v - step * gradient, lam_run.view(-1, 1) * step)
        restart = ((v - c_new) * (c_new - c)).sum(1, keepdim=True) > 0
        t_new = torch.where(restart, torch.ones_like(t), (1 + torch.sqrt(1 + 4 * t * t)) / 2)
        v = c_new + torch.where(restart, torch.zeros_like(t), (t - 1) / t_new) * (c_new - c)
        c, t = c_new, t_new
        if (k + 1) % check_every == 0 or k + 1 == max_iterations:
            done = duality_gap(c, y_run, operator, basis, lam_run) <= tol * y_run.pow(2).sum(1)
            result[rows] = c
            if bool(done.any()):
                iterations[rows[done]] = k + 1
                converged[rows[done]] = True
                keep = ~done
                rows, y_run, lam_run, c, v, t = rows[keep], y_run[keep], lam_run[keep], c[keep], v[keep], t[keep]
                if len(rows) == 0:
                    break
    return result, iterations, converged


class LassoSolver(Solver):
    """Sparse recovery baseline (the paper's Lasso): FISTA on all images at once, output clipped to [0, 1].

    The step is 1 / ||A||^2 (power method; Psi is orthonormal); ``tol`` bounds the duality gap relative to
    ||y||^2 (1e-4 is scikit-learn's default). ``lambda_l1: auto`` chooses lambda per m
    on the validation split (csgm.recovery.tuning); rows that hit ``max_iterations`` are reported with
    status ``not_converged``.
    """

    name = "lasso"
    work_options = {"max_iterations": 1}
    needs_generator = False
    needs_linear_operator = True
    tunable = "lambda_l1"

    def __init__(
        self,
        lambda_l1: float | str = "auto",
        basis: str = "pixel",
        wavelet: str = "db4",
        levels: int = 2,
        max_iterations: int = 5000,
        tol: float = 1e-4,
        lambda_grid: Sequence[float] = (),
        label: str | None = None,
    ) -> None:
        self.lambda_l1 = check_positive_lambda("lambda_l1", lambda_l1)
        check_range("solver.max_iterations", max_iterations, 1)
        check_range("solver.tol", tol, 0, low_open=True)
        self.bases = BasisCache(basis, wavelet, levels)
        self.max_iterations, self.tol = int(max_iterations), float(tol)
        self.lambda_grid = [float(v) for v in lambda_grid]
        self.label = label or self.name

    def label_tags(self) -> list[str]:
        """The sparsity basis where it is not the default one (``dct``, ``wavelet``)."""
        basis = self.bases.basis_name
        return [*super().label_tags(), *self.tag_unless_default("basis", basis, basis)]

    def solve_with(self, y: torch.Tensor, measurement: MeasurementModel | Operator, lam: torch.Tensor) -> SolverOutput:
        """Solve every row of y with its own lambda (used by the batched lambda search)."""
        operator, target = self.linear_problem(measurement, y)
        basis, lipschitz = self.bases.get(operator)
        coefficients, iterations, converged = fista(
            target, operator, basis, lam, self.max_iterations, self.tol, lipschitz
        )
        x_hat = basis.synthesis(coefficients).clamp(0, 1)
        loss = as_measurement(measurement).loss(x_hat, y)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=loss,
            iterations=iterations.cpu(),
            dropped_restarts=torch.zeros(len(y), dtype=torch.long),
            converged=converged.cpu(),
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
        """One batched FISTA run for every lambda of the search: each (candidate, image) is its own row."""
        lam = torch.tensor([c["lambda_l1"] for c in candidates], dtype=y.dtype, device=y.device).repeat_interleave(
            len(y)
        )
        out = self.solve_with(y.repeat(len(candidates), 1), measurement, lam)
        return list(out.x_hat.split(len(y)))

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        require_resolved("lambda_l1", self.lambda_l1)
        return self.solve_with(y, measurement, torch.full((len(y),), self.lambda_l1, dtype=y.dtype, device=y.device))
