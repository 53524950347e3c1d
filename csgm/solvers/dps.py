"""Diffusion posterior sampling (DPS; Chung, Kim, Mccann, Klasky, Ye, ICLR 2023) with a diffusion prior.

Reverse diffusion over ``steps`` DDIM timesteps (eta = 1: DDPM's ancestral steps; eta = 0: deterministic), each
step followed by a gradient step on the data fit of Tweedie's estimate u_hat(x_t) = E[u | x_t]:
    x_{t'} <- DDIM(x_t) - weight * grad_{x_t} sqrt(D(A x_hat(x_t), y)),   x_hat = (u_hat + 1) / 2,
where D is the measurement model's data term (||A x - y||^2 for Gaussian noise, so sqrt(D) is DPS's
||y - A x_hat||; 2 sigma^2 times the negative log-likelihood for the other noise models and quantisers, so any
differentiable operator and noise model works). The start x_T and every step's noise are drawn from (seed, image
id), so no image depends on the batch. ``weight: auto`` chooses it per m on the validation split. Each step is one
network evaluation and one backward pass through it per image (``generator_evaluations``, ``vjps``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import check_range
from csgm.generators import Generator
from csgm.generators.diffusion import ddim_times, require_diffusion
from csgm.measurement import MeasurementModel
from csgm.operators import Operator
from csgm.progress import report_steps
from csgm.seeding import seeded_rng
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.proximal import check_positive_lambda, require_resolved

__all__ = ["DPSSolver", "image_normals"]


def image_normals(streams: Sequence[torch.Generator], shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """One standard-normal draw of ``shape`` per stream (CPU, then moved like ``like``): (len(streams), *shape)."""
    draws = [torch.randn(*shape, generator=g) for g in streams]
    return torch.stack(draws).to(device=like.device, dtype=like.dtype) if draws else like.new_zeros(0, *shape)


class DPSSolver(Solver):
    """DPS: reverse diffusion guided by the data term's gradient through Tweedie's estimate."""

    name = "dps"
    needs_generator = True
    needs_diffusion = True
    tunable = "weight"
    grid_option = "weight_grid"
    work_options = {"steps": 2}

    def __init__(
        self,
        steps: int = 100,
        weight: float | str = "auto",
        weight_grid: Sequence[float] = (),
        eta: float = 1.0,
        label: str | None = None,
    ) -> None:
        check_range("solver.steps", steps, 1)
        check_range("solver.eta", eta, 0, 1)
        self.steps, self.eta = int(steps), float(eta)
        self.weight = check_positive_lambda("weight", weight)
        self.weight_grid = [float(v) for v in weight_grid]
        self.label = label or self.name

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        prior = require_diffusion(generator, self.label)
        measurement = self.accepted(measurement)
        require_resolved("weight", self.weight)
        batch = len(y)
        streams = [seeded_rng("dps", seed, int(i)) for i in image_ids]
        x = image_normals(streams, prior.image_shape, y)
        times = ddim_times(prior.timesteps, min(self.steps, prior.timesteps))
        for k, (t, t_prev) in enumerate(zip(times, [*times[1:], -1])):
            report_steps(k, len(times))
            with torch.enable_grad():
                x_t = x.detach().requires_grad_(True)
                eps = prior.predict_noise(x_t, t)
                estimate = (prior.tweedie(x_t, t, eps) + 1) / 2  # Tweedie's image, unclipped so the gradient flows
                fit = measurement.data_term(measurement.predict(estimate), y).clamp(min=1e-12).sqrt()
                (grad,) = torch.autograd.grad(fit.sum(), x_t)
            noise = image_normals(streams, prior.image_shape, y) if self.eta > 0 and t_prev >= 0 else None
            x = prior.ddim_step(x_t.detach(), t, t_prev, eps.detach(), self.eta, noise) - self.weight * grad
        x_hat = prior.to_pixels(x.detach())
        x_hat = torch.where(torch.isfinite(x_hat), x_hat, torch.zeros_like(x_hat))
        failed = ~torch.isfinite(x.detach().flatten(1)).all(1)
        count = torch.full((batch,), len(times), dtype=torch.long)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=count.clone(),
            dropped_restarts=failed.long().cpu(),
            all_restarts_diverged=failed.cpu(),
            generator_evaluations=count.clone(),
            vjps=count.clone(),
        )
