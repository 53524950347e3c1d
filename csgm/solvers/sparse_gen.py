"""Sparse-Gen (Dhar, Grover, Ermon 2018): x = G(z) + nu with nu sparse in a basis Psi.

    min_{z, c}  ||A (G(z) + Psi^T c) - y||^2 + lambda_z ||z||^2 + lambda_nu ||c||_1,   nu = Psi^T c

(the squared loss whatever the noise model, as in the paper; A must be linear).

Gradient steps (the CSGM optimiser) on z and proximal (soft-threshold) steps on c, for all images x
restarts at once; per image the restart with the lowest measurement loss is kept, then its c is
polished by FISTA with z fixed (a convex Lasso on the residual y - A G(z)). ``use_generator: false``
drops the G(z) term (x = nu, a Lasso with lambda_nu / 2); ``tune_generator: true`` lets the validation
search choose it per m together with lambda_nu. The validation search runs every lambda_nu in one batch:
each (candidate, image, restart) is a row, and the last column of the deviation state holds the row's
lambda_nu, so rows that the optimiser drops (diverged restarts) keep their own penalty.

``first_stage`` (the options of ``csgm.solvers.gauss_newton``; conf/solver/sparse_gen_qn.yaml) replaces the joint
Adam search by block-coordinate descent on the same objective: z by the second-order latent search (nu = 0), then
``rounds`` times c by FISTA with z fixed and z by second-order steps from its last value with nu fixed (the target
y - A nu), then the FISTA polish. Each block step lowers the objective (the latent steps keep only steps that lower
it; FISTA minimises over c); ``rounds: 0`` is the latent search and the polish alone. The Adam options then have
no use and may not be given.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from csgm.errors import CsgmError, check_flag, check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.operators import LinearOperator, Operator
from csgm.solvers.base import SolverOutput
from csgm.solvers.csgm import CSGMSolver
from csgm.solvers.lasso import fista
from csgm.solvers.proximal import BasisCache, check_positive_lambda, require_resolved, soft_threshold
from csgm.solvers.stages import StagedCSGMSolver

__all__ = ["SparseGenSolver"]


class SparseGenSolver(StagedCSGMSolver):
    """CSGM whose estimate may leave the range of G by a sparse deviation; keeps improving with m."""

    name = "sparse_gen"
    staged_config = "sparse_gen_qn"
    work_options = {**CSGMSolver.work_options, "polish_iterations": 1}
    needs_linear_operator = True
    accepts_quantized = False  # the deviation's steps use A^T on the residual of the data term itself
    tunable = "lambda_nu"

    def __init__(
        self,
        lambda_nu: float | str = "auto",
        basis: str = "pixel",
        wavelet: str = "db4",
        levels: int = 2,
        polish_iterations: int = 1000,
        lambda_grid: Sequence[float] = (),
        use_generator: bool = True,
        tune_generator: bool = False,
        first_stage: Mapping[str, Any] | None = None,
        rounds: int = 0,
        **csgm_options,
    ) -> None:
        super().__init__(first_stage=first_stage, **csgm_options)
        if self.l1_weight:
            raise CsgmError("sparse_gen uses the squared measurement loss only; set solver.l1_weight=0")
        check_range("solver.rounds", rounds, 0)
        self.rounds = int(rounds)
        self.lambda_nu = check_positive_lambda("lambda_nu", lambda_nu)
        self.bases = BasisCache(basis, wavelet, levels)
        self.polish_iterations = int(polish_iterations)
        self.lambda_grid = [float(v) for v in lambda_grid]
        self.use_generator = check_flag("solver.use_generator", use_generator)
        self.tune_generator = check_flag("solver.tune_generator", tune_generator)
        self._operator: LinearOperator | None = None
        self._image_lambdas: torch.Tensor | None = None  # per-image lambda_nu of a batched candidate search

    def label_tags(self) -> list[str]:
        """The sparsity basis where it is not the default one (``dct``, ``wavelet``)."""
        basis = self.bases.basis_name
        return [*super().label_tags(), *self.tag_unless_default("basis", basis, basis)]

    def candidates(self) -> list[dict]:
        """lambda_nu values; with ``tune_generator`` also each value without the generator term (x = nu),
        so that validation can switch G off where the sparse model alone recovers better (large m)."""
        switches = (True, False) if self.tune_generator else (self.use_generator,)
        return [{"lambda_nu": value, "use_generator": on} for on in switches for value in self.lambda_grid]

    def solve_candidates(
        self,
        candidates: Sequence[dict],
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> list[torch.Tensor]:
        """One batched run per generator switch for every lambda_nu of the search (one row per (candidate, image),
        the same seeded starts for every candidate), as if each candidate had run alone."""
        estimates: dict[int, torch.Tensor] = {}
        for on in (True, False):
            group = [i for i, c in enumerate(candidates) if c.get("use_generator", self.use_generator) == on]
            if not group:
                continue
            solver = self.with_options(use_generator=on, lambda_nu=candidates[group[0]]["lambda_nu"])
            solver._image_lambdas = torch.tensor(
                [candidates[i]["lambda_nu"] for i in group], dtype=y.dtype, device=y.device
            ).repeat_interleave(len(y))
            if on and self.first_stage is not None:  # one latent search serves every lambda_nu
                squared = self.squared_loss(measurement)
                out = solver.second_order_solve(y, squared, image_ids, generator, seed, copies=len(group))
            else:
                repeated = list(image_ids) * len(group)
                out = solver.solve(y.repeat(len(group), 1), measurement, repeated, generator, seed)
            estimates.update(zip(group, out.x_hat.split(len(y))))
        return [estimates[i] for i in range(len(candidates))]

    def row_lambdas(self, rows: int, like: torch.Tensor) -> torch.Tensor:
        """lambda_nu of each of ``rows`` rows (images, or images x restarts in order)."""
        if self._image_lambdas is None:
            require_resolved("lambda_nu", self.lambda_nu)
            return torch.full((rows,), float(self.lambda_nu), dtype=like.dtype, device=like.device)
        return self._image_lambdas.to(like).repeat_interleave(rows // len(self._image_lambdas))

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        measurement = self.squared_loss(measurement)
        if self.use_generator and self.first_stage is not None:
            return self.second_order_solve(y, measurement, image_ids, self.require_generator(generator), seed)
        if self.use_generator:
            return super().solve(y, measurement, image_ids, generator, seed)
        nu, iterations, converged = self.sparse_fit(y, measurement.operator)
        x_hat = nu.clamp(0, 1)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=iterations.cpu(),
            dropped_restarts=torch.zeros(len(y), dtype=torch.long),
            converged=converged.cpu(),
        )

    def squared_loss(self, measurement: MeasurementModel | Operator) -> MeasurementModel:
        """The accepted operator's noise-free model: Sparse-Gen's squared loss, whatever the noise."""
        return MeasurementModel(self.accepted(measurement).operator)

    def second_order_solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel,
        image_ids: Sequence[int],
        generator: Generator,
        seed: int,
        copies: int = 1,
    ) -> SolverOutput:
        """z by the second-order ``first_stage`` (nu = 0), ``rounds`` of (c by FISTA with z fixed, z by second-order
        steps with nu fixed), then the FISTA polish, for ``copies`` copies of the batch (one per lambda_nu of a
        candidate search: the first latent search is run once); the work of every stage summed."""
        operator = measurement.operator
        first = self.first_stage.solve(y, measurement, image_ids, generator, seed)
        y = y.repeat(copies, 1)
        z, converged = first.z.repeat(copies, 1), first.converged.repeat(copies)
        forwards = first.generator_evaluations.repeat(copies) + 1  # and G(z) of the polish
        jvps, vjps = first.jvps.repeat(copies), first.vjps.repeat(copies)
        for _ in range(self.rounds):
            with torch.no_grad():
                nu, _, _ = self.sparse_fit(y - operator(generator(z)), operator)
                target = y - operator(nu)
            out, _ = self.first_stage.refine(z, target, measurement, generator)
            z, converged = out.z, out.converged
            forwards, jvps, vjps = forwards + out.generator_evaluations + 1, jvps + out.jvps, vjps + out.vjps
        with torch.no_grad():
            range_part = generator(z)
            nu, _, polished = self.sparse_fit(y - operator(range_part), operator)
            x_hat = (range_part + nu).clamp(0, 1)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=first.iterations.repeat(copies),
            dropped_restarts=first.dropped_restarts.repeat(copies),
            z=z,
            converged=converged & polished.cpu(),
            all_restarts_diverged=first.all_restarts_diverged.repeat(copies),
            generator_evaluations=forwards,
            jvps=jvps,
            vjps=vjps,
        )

    @torch.no_grad()
    def sparse_fit(
        self, target: torch.Tensor, operator: LinearOperator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """nu = Psi^T c minimising w2 ||A nu - target||^2 + lambda_nu ||c||_1 by FISTA (the same minimiser as
        0.5 ||A nu - target||^2 + lambda_nu / (2 w2) ||c||_1); returns (nu, iterations, converged)."""
        basis, lipschitz = self.bases.get(operator)
        lam = self.row_lambdas(len(target), target) / (2 * self.l2_weight)
        coefficients, iterations, converged = fista(
            target, operator, basis, lam, self.polish_iterations, 1e-6, lipschitz
        )
        return basis.synthesis(coefficients), iterations, converged

    def init_deviation(self, z0: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        """Coefficients c = 0, and each row's lambda_nu as the last column."""
        self._operator = operator
        basis, _ = self.bases.get(operator)
        coefficients = torch.zeros(len(z0), basis.n, dtype=z0.dtype, device=z0.device)
        return torch.cat([coefficients, self.row_lambdas(len(z0), z0)[:, None]], 1)

    def image(self, z: torch.Tensor, generator: Generator, deviation: torch.Tensor | None) -> torch.Tensor:
        x = generator(z)
        if deviation is None:
            return x
        basis, _ = self.bases.get(self._operator)
        return x + basis.synthesis(deviation[:, :-1])

    def update_deviation(
        self, deviation: torch.Tensor, residual: torch.Tensor, operator: LinearOperator
    ) -> torch.Tensor:
        basis, lipschitz = self.bases.get(operator)
        step = 1.0 / (2 * self.l2_weight * lipschitz)
        gradient = 2 * self.l2_weight * basis.analysis(operator.adjoint(residual))
        coefficients, lam = deviation[:, :-1], deviation[:, -1:]
        return torch.cat([soft_threshold(coefficients - step * gradient, step * lam), lam], 1)

    def optimise(
        self, z0: torch.Tensor, y: torch.Tensor, measurement: MeasurementModel | Operator, generator: Generator
    ) -> SolverOutput:
        measurement = as_measurement(measurement)
        out = super().optimise(z0, y, measurement, generator)
        if not self.polish_iterations:
            return out
        with torch.no_grad():
            range_part = generator(out.z)
            nu, _, converged = self.sparse_fit(y - measurement.operator(range_part), measurement.operator)
            x_hat = (range_part + nu).clamp(0, 1)
        out.x_hat = x_hat
        out.measurement_loss = measurement.loss(x_hat, y)
        out.converged = converged.cpu()
        return out
