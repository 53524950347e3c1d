"""Projected gradient descent with a generative projection (Shah and Hegde, ICASSP 2018).

    x <- P_G(x + eta A^T (y - A x)),   P_G(v) = G(argmin_z ||G(z) - v||^2)

The projection is an inner Adam search on z, warm-started from the previous projection's z (the first from
z ~ N(0, I) seeded per (seed, image id)), for all images at once; eta = ``step`` / ||A||^2, with ``step: auto``
chosen per m from ``step_grid`` on the validation split (1/||A||^2 is safe but slow for a Gaussian A with m < n,
where A^T A / m is near the identity on the range of G). The estimate is the iterate with the lowest data
term, so iterating never makes it worse than the first projection (``start_loss``). Needs a linear A.

``projection`` (the options of ``csgm.solvers.gauss_newton``; conf/solver/pgd_qn.yaml) makes each projection a
second-order search on ||G(z) - v||^2 + lambda_z ||z||^2 from the same warm start instead of the Adam steps; the
Adam options (``inner_iterations``, ``inner_lr``) then have no use and may not be given. With secant steps a
projection may start from the previous projection's model Hessian instead of a fresh Jacobian (k forward-mode
products): ``jacobian_every`` n forms one every n-th projection (1: every projection; 0: only where no model
Hessian is at hand, the first projection and, after a start-bank start, the second).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from csgm.errors import CsgmError, check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.operators import IdentityOperator, Operator
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.csgm import initial_latents
from csgm.solvers.latent_optim import LatentOptimizer
from csgm.solvers.proximal import check_positive_lambda, require_resolved
from csgm.solvers.stages import second_order_stage, shrunk_with_stage

__all__ = ["PGDSolver"]

ADAM_PROJECTION = {"inner_iterations": 50, "inner_lr": 0.05}  # the Adam projection's options where not given


class PGDSolver(Solver):
    """PGD on x with an inner latent projection onto range(G)."""

    name = "pgd"
    needs_generator = True
    needs_linear_operator = True
    tunable = "step"
    grid_option = "step_grid"
    work_options = {"iterations": 1, "inner_iterations": 1}

    def __init__(
        self,
        iterations: int = 50,
        step: float | str = "auto",
        step_grid: Sequence[float] = (),
        inner_iterations: int | None = None,
        inner_lr: float | None = None,
        projection: Mapping[str, Any] | None = None,
        jacobian_every: int = 1,
        label: str | None = None,
    ) -> None:
        adam = {k: v for k, v in (("inner_iterations", inner_iterations), ("inner_lr", inner_lr)) if v is not None}
        self.projection = (
            second_order_stage("projection", projection, adam, "the Adam projection", "pgd_qn") if projection else None
        )
        adam = {**ADAM_PROJECTION, **adam}
        for key, value in (("iterations", iterations), *adam.items()):
            check_range(f"solver.{key}", value, 0, low_open=True)
        self.step = check_positive_lambda("step", step)
        self.step_grid = [check_positive_lambda("step_grid", float(v)) for v in step_grid]
        check_range("solver.jacobian_every", jacobian_every, 0)
        if jacobian_every != 1 and not self.projection:
            raise CsgmError(
                f"solver.jacobian_every={jacobian_every} sets the second-order projection's Jacobians, and this PGD "
                "projects by Adam steps; drop it or use solver=pgd_qn"
            )
        self.iterations, self.jacobian_every = int(iterations), int(jacobian_every)
        self.inner_iterations, self.inner_lr = int(adam["inner_iterations"]), float(adam["inner_lr"])
        self.label = label or self.name

    @classmethod
    def shrunk_options(cls, options: dict[str, Any], scale: float) -> dict[str, Any]:
        """A smoke test's options: with a second-order ``projection``, that stage's work shrinks instead of the
        unused Adam options."""
        if options.get("projection"):
            return shrunk_with_stage(cls, options, scale, "projection", ADAM_PROJECTION)
        return super().shrunk_options({"inner_iterations": ADAM_PROJECTION["inner_iterations"], **options}, scale)

    def project(
        self,
        v: torch.Tensor,
        z: torch.Tensor | None,
        generator: Generator,
        image_ids: Sequence[int],
        seed: int,
        hessian: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(z near argmin ||G(z) - v||^2 from the warm start z, its work per image: (forwards, JVPs, VJPs) as a
        (3, B) tensor, the secant model Hessian to carry to the next projection or None): the second-order
        ``projection`` (z None: from its start bank's screened latents for v; ``hessian``: its first model Hessian
        instead of a Jacobian's) or ``inner_iterations`` Adam steps (z updated in place)."""
        if self.projection is not None:
            model = MeasurementModel(IdentityOperator(v.shape[1:]))
            if z is None:
                out, hessian = self.projection.solve(v.flatten(1), model, image_ids, generator, seed), None
            else:
                out, hessian = self.projection.refine(z, v.flatten(1), model, generator, hessian)
            return out.z, torch.stack([out.generator_evaluations, out.jvps, out.vjps]), hessian
        optimizer = LatentOptimizer("adam", z)
        for _ in range(self.inner_iterations):
            with torch.enable_grad():
                leaf = z.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad((generator(leaf) - v).pow(2).sum(), leaf)
            optimizer.step(z, None, grad, self.inner_lr)
        steps = self.inner_iterations
        return z, torch.tensor([steps, 0, steps], dtype=torch.long)[:, None].expand(3, len(z)), None

    @torch.no_grad()
    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        generator = self.require_generator(generator)
        require_resolved("step", self.step)
        measurement = as_measurement(measurement)
        operator, target = self.linear_problem(measurement, y)
        eta = self.step / operator.norm_squared()
        banked = self.projection is not None and self.projection.start_bank is not None
        z = None if banked else initial_latents(generator, image_ids, 1, seed).to(device=y.device, dtype=y.dtype)
        x = torch.zeros(len(y), *operator.image_shape, dtype=y.dtype, device=y.device)
        best_x, best_z, first_loss = x, None, None
        best_loss = torch.full((len(y),), torch.inf, dtype=y.dtype, device=y.device)
        work = torch.zeros(3, len(y), dtype=torch.long)  # forwards, JVPs, VJPs per image
        hessian = None  # the secant model Hessian carried from projection to projection
        for iteration in range(self.iterations):
            v = x + eta * operator.adjoint(target - operator(x))
            fresh = iteration % self.jacobian_every == 0 if self.jacobian_every else iteration == 0
            z, projection_work, hessian = self.project(v, z, generator, image_ids, seed, None if fresh else hessian)
            work += projection_work
            x = generator(z)
            loss = measurement.loss(x.clamp(0, 1), y)
            first_loss = loss if first_loss is None else first_loss
            better = loss < best_loss  # the best iterate by the data term: the iterations never make it worse
            best_x = torch.where(better.view(-1, 1, 1, 1), x, best_x)
            best_z = z if best_z is None else torch.where(better[:, None], z, best_z)
            best_loss = torch.where(better, loss, best_loss)
        x_hat = best_x.clamp(0, 1)
        count = len(y)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=best_loss,
            start_loss=first_loss,
            z=best_z,
            iterations=torch.full((count,), self.iterations, dtype=torch.long),
            dropped_restarts=torch.zeros(count, dtype=torch.long),
            generator_evaluations=work[0] + self.iterations,
            jvps=work[1],
            vjps=work[2],
            all_restarts_diverged=~torch.isfinite(x_hat.flatten(1)).all(1).cpu(),
        )
