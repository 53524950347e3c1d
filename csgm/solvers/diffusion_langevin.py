"""Annealed Langevin posterior sampling with a diffusion prior's score (Jalal, Arvinte, Daras, Price, Dimakis,
Tamir, NeurIPS 2021; the sampler of Song and Ermon 2019).

In the variance-exploding form u_t = x_t / sqrt(abar_t) = u + sigma_t eps (u = 2 x - 1, sigma_t^2 = (1 - abar_t) /
abar_t) the prior's score is -eps(x_t, t) / sigma_t. Over ``levels`` noise levels from the largest down, each chain
takes ``steps_per_level`` Langevin steps
    u <- u + alpha_t (score(u) - w_t grad_u D(A x(u), y)) + sqrt(2 alpha_t) xi,   x(u) = (u + 1) / 2,
with D the measurement model's data term (2 sigma^2 times the negative log-likelihood) and the likelihood annealed
as Jalal et al. do, w_t = 1 / (2 (sigma^2 + c sigma_t^2 / 4)): the noise sigma_t of u passes through A as
measurement noise of variance c sigma_t^2 / 4, c = E||J xi||^2 / m the mean energy of a row of A's Jacobian J
(one probe per image). The step alpha_t = step_scale / L_t, L_t = 1 / sigma_t^2 + ||J||^2 / (4 (sigma^2 + c
sigma_t^2 / 4)) the posterior's curvature bound (||J||^2 by power iteration per image), so the sampler is stable
for every operator scale. ``chains`` independent chains per image, each seeded by (seed, image id, chain): x_hat
is their mean, with the pixel std and central intervals of the K final samples. A known noise level is needed.
NFEs per image: chains x levels x steps_per_level network evaluations (no backward pass through the network).
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
from csgm.solvers.dps import image_normals
from csgm.solvers.langevin import central_intervals

__all__ = ["DiffusionLangevinSolver", "jacobian_scales"]


def jacobian_scales(
    predict, x: torch.Tensor, probe: torch.Tensor, iterations: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, L) per row at images x: c = ||J probe||^2 / m (the mean row energy of the Jacobian J of ``predict``, for
    a standard-normal ``probe``) and L = ||J||^2 (power iteration on J^T J from the probe)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = predict(x)
        w = torch.zeros_like(out, requires_grad=True)
        (jt_w,) = torch.autograd.grad(out, x, w, create_graph=True)

        def jvp(v: torch.Tensor) -> torch.Tensor:
            return torch.autograd.grad(jt_w, w, v, retain_graph=True)[0]

        def vjp(u: torch.Tensor) -> torch.Tensor:
            return torch.autograd.grad(out, x, u, retain_graph=True)[0]

        first = jvp(probe)
        energy = first.pow(2).flatten(1).sum(1) / out.shape[1]
        v = probe
        norm = torch.ones(len(x), dtype=x.dtype, device=x.device)
        for _ in range(iterations):
            gram = vjp(jvp(v))
            norm = gram.flatten(1).norm(dim=1)
            v = gram / norm.clamp(min=1e-30).view(-1, *[1] * (gram.dim() - 1))
    return energy.detach(), norm.detach()


class DiffusionLangevinSolver(Solver):
    """Annealed Langevin dynamics on p(u | y) with the diffusion prior's score, K chains per image."""

    name = "diffusion_langevin"
    needs_generator = True
    needs_diffusion = True
    work_options = {"levels": 2, "steps_per_level": 1}

    def __init__(
        self,
        chains: int = 8,
        levels: int = 100,
        steps_per_level: int = 3,
        step_scale: float = 0.5,
        keep_samples: int = 4,
        label: str | None = None,
    ) -> None:
        for key, value in (("chains", chains), ("levels", levels), ("steps_per_level", steps_per_level)):
            check_range(f"solver.{key}", value, 1)
        check_range("solver.step_scale", step_scale, 0, 1, low_open=True)
        check_range("solver.keep_samples", keep_samples, 0, chains)
        self.chains, self.levels, self.steps_per_level = int(chains), int(levels), int(steps_per_level)
        self.step_scale, self.keep_samples = float(step_scale), int(keep_samples)
        self.label = label or self.name

    def sample(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """The chains' final images in model scale, (B, K, C, H, W)."""
        prior = require_diffusion(generator, self.label)
        measurement = self.sampled(measurement)
        var = measurement.noise.std**2
        batch, chains, shape = len(y), self.chains, prior.image_shape
        streams = [seeded_rng("diffusion_langevin", seed, int(i), c) for i in image_ids for c in range(chains)]
        y_rep = y.repeat_interleave(chains, dim=0)
        probes = image_normals([seeded_rng("jacobian_probe", seed, int(i)) for i in image_ids], shape, y)
        energy, gram = jacobian_scales(measurement.predict, torch.full_like(probes, 0.5), probes)
        energy, gram = energy.repeat_interleave(chains), gram.repeat_interleave(chains)
        times = ddim_times(prior.timesteps, min(self.levels, prior.timesteps))
        u = image_normals(streams, shape, y) * prior.noise_level(times[0])
        total = len(times) * self.steps_per_level
        for level, t in enumerate(times):
            sigma = prior.noise_level(t)
            noisy = var + energy * sigma**2 / 4  # the measurement noise of u_t's images, per chain
            weight = (1 / (2 * noisy)).view(-1, 1, 1, 1)
            alpha = (self.step_scale / (1 / sigma**2 + gram / (4 * noisy))).view(-1, 1, 1, 1)
            scale = 1 / (1 + sigma**2) ** 0.5  # x_t = sqrt(abar) u_t, sqrt(abar) = 1 / sqrt(1 + sigma^2)
            for k in range(self.steps_per_level):
                report_steps(level * self.steps_per_level + k, total)
                score = -prior.predict_noise(scale * u, t) / sigma
                with torch.enable_grad():
                    u_req = u.detach().requires_grad_(True)
                    data = measurement.data_term(measurement.predict((u_req + 1) / 2), y_rep)
                    (grad,) = torch.autograd.grad(data.sum(), u_req)
                noise = image_normals(streams, shape, y)
                u = u + alpha * (score - weight * grad) + (2 * alpha).sqrt() * noise
        return u.view(batch, chains, *shape)

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        final = self.sample(y, measurement, image_ids, generator, seed)
        measurement = self.accepted(measurement)
        batch = len(y)
        samples = ((final + 1) / 2).clamp(0, 1)
        mean = samples.mean(1)
        failed = ~torch.isfinite(final.flatten(1)).all(1)
        x_hat = torch.where(torch.isfinite(mean), mean, torch.zeros_like(mean))
        samples = torch.nan_to_num(samples)
        steps = min(self.levels, generator.timesteps) * self.steps_per_level
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=torch.full((batch,), steps, dtype=torch.long),
            dropped_restarts=torch.zeros(batch, dtype=torch.long),
            all_restarts_diverged=failed.cpu(),
            generator_evaluations=torch.full((batch,), self.chains * steps, dtype=torch.long),
            samples=samples[:, : self.keep_samples],
            pixel_std=samples.std(1, unbiased=False),
            intervals=central_intervals(samples),
        )
