"""Posterior sampling in latent space (Jalal, Karmalkar, Dimakis, Price 2021): p(z | y) ~ exp(-NLL(y | G(z))) N(z; 0, I).

K chains per image, batched with the images, each chain seeded by (seed, image id, chain) for its start
and for every step's noise, so no sample depends on the batch. Unadjusted Langevin (ULA),
    z <- z + eta grad log p(z | y) + sqrt(2 eta) xi,
or MALA (the same proposal with a Metropolis-Hastings test, exact in the limit). During the burn-in the
likelihood is tempered (from ``initial_temperature`` down to 1) and each chain's step size adapts towards
``target_acceptance`` of the Metropolis test; after it, the step is fixed (so MALA is a valid MCMC). The likelihood is the
measurement model's (its data term over 2 sigma^2, csgm.measurement): a known noise level is required.
Outputs: the posterior mean of G(z) (x_hat), the last state of the first ``keep_samples`` chains, the
pixelwise standard deviation and central 50/80/90/95% intervals of the recorded samples, and MALA's acceptance rate.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from csgm.errors import check_flag, check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.operators import Operator
from csgm.seeding import seeded_rng
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.mcmc import chain_diagnostics
from csgm.progress import report_steps
from csgm.results import COVERAGE_LEVELS

__all__ = ["LangevinRun", "LangevinSolver", "central_intervals", "quantile"]


def quantile(samples: torch.Tensor, q: float) -> torch.Tensor:
    """The q-quantile over dim 1 with linear interpolation (as torch.quantile, without its size limit)."""
    ordered = samples.sort(dim=1).values
    position = q * (samples.shape[1] - 1)
    low = int(math.floor(position))
    high = min(low + 1, samples.shape[1] - 1)
    return ordered[:, low] + (position - low) * (ordered[:, high] - ordered[:, low])


def central_intervals(samples: torch.Tensor) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
    """The central pixel intervals of samples (B, S, C, H, W) at every level of ``COVERAGE_LEVELS``: {level: (lower,
    upper)}, each (B, C, H, W)."""
    return {
        level: (quantile(samples, (1 - level) / 2), quantile(samples, (1 + level) / 2)) for level in COVERAGE_LEVELS
    }


class LangevinRun(NamedTuple):
    """The chains' record of one ``LangevinSolver.sample`` call for B images x K chains, S records per chain."""

    latents: torch.Tensor  # (B, S K, k) recorded latents, record-major (the K chains of record 0 first)
    images: torch.Tensor  # (B, S K, C, H, W) the images of those latents
    last: torch.Tensor  # (B, K, C, H, W) each chain's last image
    acceptance: torch.Tensor  # (B, K) each chain's acceptance rate after the burn-in
    start_loss: torch.Tensor  # (B,) the mean data term of the chains' starting points

    def chains(self) -> torch.Tensor:
        """The recorded latents per chain, (B, K, S, k), as the convergence diagnostics take them."""
        batch, chains = self.last.shape[:2]
        return self.latents.view(batch, -1, chains, self.latents.shape[-1]).transpose(1, 2)


class LangevinSolver(Solver):
    """Langevin / MALA posterior sampling over the latent of a frozen generator."""

    name = "langevin"
    needs_generator = True
    work_options = {"steps": 2, "burn_in": 0}

    def __init__(
        self,
        chains: int = 8,
        steps: int = 1000,
        burn_in: int = 500,
        thin: int = 10,
        step_size: float = 1e-4,
        target_acceptance: float = 0.574,
        initial_temperature: float = 100.0,
        mala: bool = False,
        keep_samples: int = 4,
        label: str | None = None,
    ) -> None:
        for key, value in (("chains", chains), ("steps", steps), ("thin", thin), ("step_size", step_size)):
            check_range(f"solver.{key}", value, 0, low_open=True)
        check_range("solver.burn_in", burn_in, 0, steps - 1)
        check_range("solver.keep_samples", keep_samples, 0, chains)
        check_range("solver.target_acceptance", target_acceptance, 0, 1, low_open=True)
        check_range("solver.initial_temperature", initial_temperature, 1)
        self.chains, self.steps, self.burn_in, self.thin = int(chains), int(steps), int(burn_in), int(thin)
        self.step_size, self.target_acceptance = float(step_size), float(target_acceptance)
        self.initial_temperature = float(initial_temperature)
        self.mala = check_flag("solver.mala", mala)
        self.keep_samples = int(keep_samples)
        self.label = label or self.name

    def label_tags(self) -> list[str]:
        """MALA (``mala``): a Metropolis test on every step."""
        return [*super().label_tags(), *self.tag_unless_default("mala", self.mala, "mala")]

    def temperature_at(self, t: int) -> float:
        """The likelihood's temperature at step t: geometric from initial_temperature to 1 over the first half of
        the burn-in (tempering lets chains started from the prior find the posterior's mass), then 1."""
        anneal = self.burn_in // 2
        if t >= anneal:
            return 1.0
        return self.initial_temperature ** (1 - t / anneal)

    def log_posterior(
        self, z: torch.Tensor, y: torch.Tensor, measurement: MeasurementModel, generator: Generator, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log p(z | y) + const per row at likelihood scale ``scale`` (2 sigma^2 x temperature), its gradient, G(z))."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            x = generator(z)
            value = -measurement.data_term(measurement.predict(x), y) / scale - 0.5 * z.pow(2).sum(1)
            (grad,) = torch.autograd.grad(value.sum(), z)
        return value.detach(), grad, x.detach()

    @torch.no_grad()
    def sample(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> LangevinRun:
        """Run the chains; latents and images are recorded every ``thin`` steps after the burn-in."""
        generator = self.require_generator(generator)
        measurement = self.sampled(measurement)
        std = measurement.noise.std
        batch, chains, k = len(y), self.chains, generator.latent_dim
        streams = [seeded_rng("langevin", seed, int(i), c) for i in image_ids for c in range(chains)]
        z = torch.cat([generator.sample_latents(1, g) for g in streams]).to(device=y.device, dtype=y.dtype)
        y_rep = y.repeat_interleave(chains, dim=0)
        scale = 2 * std**2 * self.temperature_at(0)
        value, grad, x = self.log_posterior(z, y_rep, measurement, generator, scale)
        start_loss = measurement.loss(x, y_rep).view(batch, chains).mean(1)
        log_eta = torch.full((len(z),), math.log(self.step_size), dtype=y.dtype, device=y.device)  # per chain
        accepted = torch.zeros(len(z), dtype=y.dtype, device=y.device)
        records, latents = [], []
        for t in range(self.steps):
            report_steps(t, self.steps)
            new_scale = 2 * std**2 * self.temperature_at(t)
            if new_scale != scale:  # the target changed: re-evaluate the current state under it
                scale = new_scale
                value, grad, x = self.log_posterior(z, y_rep, measurement, generator, scale)
            eta = log_eta.exp()[:, None]
            draws = torch.stack([torch.randn(k + 1, generator=g) for g in streams]).to(device=y.device, dtype=y.dtype)
            proposal = z + eta * grad + torch.sqrt(2 * eta) * draws[:, :k]
            new_value, new_grad, new_x = self.log_posterior(proposal, y_rep, measurement, generator, scale)
            forward = (proposal - z - eta * grad).pow(2).sum(1) / (4 * eta[:, 0])
            backward = (z - proposal - eta * new_grad).pow(2).sum(1) / (4 * eta[:, 0])
            log_ratio = torch.nan_to_num(new_value - value - backward + forward, nan=-torch.inf)
            if t < self.burn_in:  # adapt each chain's step towards the target acceptance (burn-in only)
                log_eta += 0.05 * (log_ratio.clamp(max=0).exp() - self.target_acceptance)
            uniform = 0.5 * (1 + torch.erf(draws[:, k] / math.sqrt(2)))  # the last draw as a U(0, 1)
            accept = torch.log(uniform) < log_ratio if self.mala else torch.isfinite(new_value)
            z = torch.where(accept[:, None], proposal, z)
            value, grad = torch.where(accept, new_value, value), torch.where(accept[:, None], new_grad, grad)
            x = torch.where(accept.view(-1, 1, 1, 1), new_x, x)
            if t >= self.burn_in:
                accepted += accept.to(accepted.dtype)
                if (t - self.burn_in) % self.thin == 0:
                    records.append(x.view(batch, chains, *x.shape[1:]))
                    latents.append(z.view(batch, chains, k))
        acceptance = (accepted / (self.steps - self.burn_in)).view(batch, chains)
        return LangevinRun(
            torch.cat(latents, dim=1),
            torch.cat(records, dim=1),
            x.view(batch, chains, *x.shape[1:]),
            acceptance,
            start_loss,
        )

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        run = self.sample(y, measurement, image_ids, generator, seed)
        measurement = as_measurement(measurement)
        batch, samples = len(y), run.images
        mean = samples.mean(1)
        x_hat = mean.clamp(0, 1)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=torch.full((batch,), self.steps, dtype=torch.long),
            dropped_restarts=torch.zeros(batch, dtype=torch.long),
            generator_evaluations=torch.full((batch,), self.chains * (self.steps + 1), dtype=torch.long),
            samples=run.last[:, : self.keep_samples].clamp(0, 1),
            pixel_std=samples.std(1, unbiased=False),
            intervals=central_intervals(samples),
            acceptance=run.acceptance.mean(1).cpu() if self.mala else None,
            all_restarts_diverged=~torch.isfinite(mean.flatten(1)).all(1).cpu(),
            diagnostics={
                **chain_diagnostics(run.chains()),
                "draws": torch.full((batch,), float(samples.shape[1] // self.chains), dtype=torch.float64),
            },
            start_loss=run.start_loss,
        )
