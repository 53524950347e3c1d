"""Intermediate layer optimisation (ILO; Daras, Dean, Jalal, Dimakis, ICML 2021).

First CSGM on z (restarts, the kept latent z*); then, with G = tail o head split at ``layer``
(``Generator.split``), Adam steps on the intermediate activations h from h0 = head(z*) on the same data term
through ``tail``, each step followed by the projection of h onto the l1 ball of radius ``radius`` around h0.
Leaving range(G) by a bounded amount lets the estimate go below the generator's representation error
(CSGM's plateau), while the ball keeps it near what the earlier layers can produce. A row whose search does not
lower the data term keeps CSGM's estimate (``start_loss`` is CSGM's data term). ``radius: auto``
chooses the radius per m on the validation split (one CSGM run serves every candidate radius).

``first_stage`` (the options of ``csgm.solvers.gauss_newton``, e.g. ``csgm_qn``'s; conf/solver/ilo_qn.yaml)
replaces the Adam search of the first stage by second-order latent steps from the screened start bank; the Adam
options (``lr``, ``iterations``, ``restarts``, ...) then have no use and may not be given.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import torch

from csgm.errors import check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.operators import Operator
from csgm.solvers.base import SolverOutput
from csgm.solvers.csgm import CSGMSolver
from csgm.solvers.latent_optim import LatentOptimizer
from csgm.solvers.proximal import check_positive_lambda, require_resolved
from csgm.solvers.stages import StagedCSGMSolver

__all__ = ["ILOSolver", "project_l1_ball"]


def project_l1_ball(v: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of every row of v (B, d) onto {w : ||w||_1 <= radius_row} (Duchi et al. 2008)."""
    radius = radius.view(-1, 1).to(v.dtype)
    inside = v.abs().sum(1, keepdim=True) <= radius
    magnitude = v.abs().sort(dim=1, descending=True).values
    cumulative = magnitude.cumsum(1)
    index = torch.arange(1, v.shape[1] + 1, device=v.device, dtype=v.dtype)
    support = (magnitude * index > cumulative - radius).sum(1, keepdim=True).clamp_min(1)
    threshold = (cumulative.gather(1, support - 1) - radius) / support.to(v.dtype)
    projected = torch.sign(v) * (v.abs() - threshold).clamp_min(0)
    return torch.where(inside, v, projected)


class ILOSolver(StagedCSGMSolver):
    """CSGM, then a bounded search over one intermediate layer's activations."""

    name = "ilo"
    replaced_search = "the Adam first stage"
    staged_config = "ilo_qn"
    tunable = "radius"
    grid_option = "radius_grid"
    work_options = {**CSGMSolver.work_options, "layer_iterations": 1}

    def __init__(
        self,
        layer: int = 1,
        radius: float | str = "auto",
        radius_grid: Sequence[float] = (),
        layer_iterations: int = 300,
        layer_lr: float = 0.01,
        first_stage: Mapping[str, Any] | None = None,
        **csgm_options,
    ) -> None:
        super().__init__(first_stage=first_stage, **csgm_options)
        check_range("solver.layer", layer, 1)
        check_range("solver.layer_iterations", layer_iterations, 1)
        check_range("solver.layer_lr", layer_lr, 0, low_open=True)
        self.layer, self.layer_iterations, self.layer_lr = int(layer), int(layer_iterations), float(layer_lr)
        self.radius = check_positive_lambda("radius", radius)
        self.radius_grid = [check_positive_lambda("radius_grid", float(v)) for v in radius_grid]

    def first_stage_solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel,
        image_ids: Sequence[int],
        generator: Generator,
        seed: int,
    ) -> SolverOutput:
        """The first stage's kept latents and estimates: the second-order ``first_stage``, else CSGM's Adam."""
        if self.first_stage is not None:
            return self.first_stage.solve(y, measurement, image_ids, generator, seed)
        return CSGMSolver.solve(self, y, measurement, image_ids, generator, seed)

    def intermediate(
        self,
        z: torch.Tensor,
        y: torch.Tensor,
        measurement: MeasurementModel,
        generator: Generator,
        radius: torch.Tensor,
    ) -> torch.Tensor:
        """x = tail(h) after the projected Adam search on h from head(z), per row within its own ``radius``."""
        head, tail = generator.split(self.layer)
        with torch.no_grad():
            start = head(z)
        shape = start.shape
        offset = torch.zeros_like(start.flatten(1))
        optimizer = LatentOptimizer("adam", offset)
        for _ in range(self.layer_iterations):
            with torch.enable_grad():
                leaf = offset.detach().requires_grad_(True)
                loss = measurement.data_term(measurement.predict(tail((start.flatten(1) + leaf).view(shape))), y)
                (grad,) = torch.autograd.grad(loss.sum(), leaf)
            optimizer.step(offset, None, grad, self.layer_lr)
            offset.copy_(project_l1_ball(offset, radius))
        with torch.no_grad():
            return tail((start.flatten(1) + offset).view(shape))

    def layer_estimate(
        self,
        csgm: SolverOutput,
        y: torch.Tensor,
        measurement: MeasurementModel,
        generator: Generator,
        radius: torch.Tensor,
        copies: int = 1,
    ) -> torch.Tensor:
        """x_hat of the layer search from CSGM's kept latents, repeated ``copies`` times (one radius per row).
        The stage never makes an estimate worse: a row keeps CSGM's estimate where the search's data term is not
        lower (or not finite), and an image whose restarts all diverged keeps CSGM's fallback estimate."""
        y = y.repeat(copies, 1)
        start = csgm.x_hat.repeat(copies, 1, 1, 1)
        x_hat = self.intermediate(csgm.z.repeat(copies, 1), y, measurement, generator, radius).clamp(0, 1)
        improved = measurement.loss(x_hat, y) < csgm.measurement_loss.repeat(copies).to(x_hat.device)
        failed = csgm.all_restarts_diverged.repeat(copies).to(x_hat.device)
        return torch.where((improved & ~failed).view(-1, 1, 1, 1), x_hat, start)

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        require_resolved("radius", self.radius)
        generator = self.require_generator(generator)
        generator.split(self.layer)  # an unsplittable generator or a bad layer fails here, in one line
        measurement = as_measurement(measurement)
        out = self.first_stage_solve(y, measurement, image_ids, generator, seed)
        x_hat = self.layer_estimate(out, y, measurement, generator, torch.full((len(y),), self.radius, device=y.device))
        return dataclasses.replace(
            out,
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            start_loss=out.measurement_loss,
            generator_evaluations=out.generator_evaluations + self.layer_iterations + 1,
            vjps=out.vjps + self.layer_iterations,
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
        """One first-stage run, then the layer search for every candidate radius at once (one row per (radius,
        image))."""
        measurement = as_measurement(measurement)
        out = self.first_stage_solve(y, measurement, image_ids, generator, seed)
        radius = torch.tensor([c["radius"] for c in candidates], device=y.device).repeat_interleave(len(y))
        return list(self.layer_estimate(out, y, measurement, generator, radius, copies=len(candidates)).split(len(y)))
