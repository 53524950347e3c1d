"""Preconditioned Hamiltonian Monte Carlo over the latent of a frozen generator, with an optional model-mismatch term.

The target is p(z | y) ~ exp(-NLL(y | G(z))) N(z; 0, I). Per image, K chains (batched with the images; every
start, choice and step's draw is seeded by (seed, image id, start or chain), so no sample depends on the batch):

1. **Starts**: ``mode_starts`` latents z ~ N(0, ``init_scale``^2 I) per image, over-dispersed relative to the
   posterior (the prior is far wider than it).
2. **Modes**: ``mode_steps`` Levenberg-Marquardt steps on U(z) = -log p(z | y) from every start, with the
   Gauss-Newton matrix H = J^T Sigma^-1 J + I (J the Jacobian of A G(z), by torch.func; 20 x 20 for the paper's
   VAE) and the likelihood tempered from ``initial_temperature`` down to 1 over the first half. With
   ``resample_modes`` the K chains are then drawn among the distinct modes found, in proportion to each
   mode's Laplace mass exp(-U) det(H)^-1/2 (a start trapped in a poor local optimum would otherwise weigh as
   much as the dominant mode); without it chain c starts at start c's mode.
3. **Warm-up**: ``warmup`` HMC transitions with the mass matrix M = the image's mean H over its chains (fixed
   from here on), the step size adapted by dual averaging towards ``target_acceptance`` (one per image).
4. **Sampling**: ``draws`` transitions at the frozen step size and mass matrix (a valid MCMC kernel), the
   latent kept every step for the diagnostics, the image every ``thin`` steps.
5. **Mode jumps** (``jumps`` per transition, in warm-up and sampling): independence Metropolis-Hastings moves
   whose proposal is the image's mixture of the Laplace Gaussians N(mode, ``jump_scale``^2 H^-1) of all its
   starts' modes, weighted as in 2. Each is exact whatever the mixture's quality (a poor one is only rejected
   more often), and lets every chain move between modes that the Hamiltonian steps never cross, so the chains
   agree (R-hat) even when the posterior is multimodal. One generator evaluation each.

One leapfrog step is preconditioned MALA. ArviZ's R-hat and bulk/tail ESS of the latent coordinates are
returned per image (``SolverOutput.diagnostics``); an image whose worst R-hat exceeds ``max_rhat`` or whose
smallest bulk ESS is below ``min_ess`` is reported not converged.

**Mismatch** (``mismatch``, for a linear operator and Gaussian noise): x = G(z) + e with e ~ N(0, tau^2 I) or a
per-pixel tau (a tensor file of the image's shape), so y = A G(z) + A e + noise and the likelihood's covariance
is A diag(tau^2) A^T + sigma^2 I. Pixel samples are G(z) + e with e drawn from p(e | z, y) by Matheron's rule.
tau is estimated from range errors on validation images (benchmarks/coverage.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.func import jacfwd, vmap

from csgm.errors import CsgmError, check_flag, check_range
from csgm.generators import Generator
from csgm.options import default_of
from csgm.measurement import MeasurementModel, as_measurement
from csgm.operators import GaussianNoise, Operator
from csgm.seeding import seeded_rng
from csgm.solvers.base import HealthLimits, Solver, SolverOutput
from csgm.solvers.langevin import central_intervals
from csgm.solvers.mcmc import (
    DualAveraging,
    ModeMixture,
    accepted_state,
    chain_diagnostics,
    hamiltonian_transition,
    independence_transition,
)
from csgm.progress import report_steps

__all__ = ["ChainRun", "HMCSolver", "LatentPosterior"]


class LatentPosterior:
    """U(z) = -log p(z | y) + const for rows of z (N, k) against rows of y (N, m), its gradient and its Gauss-Newton
    matrix; with a mismatch variance ``tau2`` (a scalar or per pixel, shape (n,)) the Gaussian likelihood
    with covariance A diag(tau2) A^T + sigma^2 I."""

    def __init__(
        self, generator: Generator, measurement: MeasurementModel, y: torch.Tensor, tau2: torch.Tensor | None = None
    ) -> None:
        self.generator, self.measurement, self.y = generator, measurement, y
        self.noise_std = measurement.noise.std
        self.tau2 = tau2
        self.temperature = 1.0  # the likelihood's temperature (above 1 only while searching for modes)
        if tau2 is not None:
            operator = measurement.operator
            self.matrix = operator.to_dense(max_pixels=operator.n, dtype=torch.float64)  # A (m, n)
            covariance = (self.matrix * tau2) @ self.matrix.T
            covariance.diagonal().add_(self.noise_std**2)
            self.cholesky = torch.linalg.cholesky(covariance)

    def whiten(self, residual: torch.Tensor) -> torch.Tensor:
        """Sigma^-1/2 r for residual rows or columns-of-Jacobian stacks (..., m[, k]) in the mismatch model."""
        column = residual.ndim == 2
        values = residual.double().T if column else residual.double()
        solved = torch.linalg.solve_triangular(self.cholesky, values, upper=False)
        return (solved.T if column else solved).to(residual.dtype)

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(U (N,), grad U (N, k), G(z) (N, C, H, W))."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            x = self.generator(z)
            prediction = self.measurement.predict(x)
            if self.tau2 is None:
                nll = self.measurement.data_term(prediction, self.y) / (2 * self.noise_std**2)
            else:
                nll = 0.5 * self.whiten(self.y - prediction).pow(2).sum(1)
            value = nll / self.temperature + 0.5 * z.pow(2).sum(1)
            (grad,) = torch.autograd.grad(value.sum(), z)
        return value.detach(), grad, x.detach()

    def gauss_newton(self, z: torch.Tensor) -> torch.Tensor:
        """H = J^T Sigma^-1 J + I per row (N, k, k), float64: J the Jacobian of the predicted measurements."""

        def predict(row: torch.Tensor) -> torch.Tensor:
            return self.measurement.predict(self.generator(row[None]))[0]

        with torch.no_grad():
            jacobian = vmap(jacfwd(predict))(z.detach()).double()  # (N, m, k)
        if self.tau2 is None:
            jacobian = jacobian / self.noise_std
        else:
            jacobian = torch.linalg.solve_triangular(self.cholesky, jacobian, upper=False)
        eye = torch.eye(z.shape[1], dtype=torch.float64, device=z.device)
        return jacobian.transpose(1, 2) @ jacobian / self.temperature + eye

    def mismatch_draw(self, x: torch.Tensor, normal_pixels: torch.Tensor, normal_noise: torch.Tensor) -> torch.Tensor:
        """e ~ p(e | z, y) for rows of G(z) ``x`` (N, C, H, W) by Matheron's rule: e0 ~ N(0, tau2), n0 ~ N(0, sigma^2),
        e = e0 + tau2 A^T Sigma^-1 (y - A G(z) - A e0 - n0), from standard normals (N, n) and (N, m)."""
        flat = x.double().flatten(1)
        e0 = normal_pixels.double() * self.tau2.sqrt()
        residual = self.y.double() - (flat + e0) @ self.matrix.T - self.noise_std * normal_noise.double()
        solved = torch.cholesky_solve(residual.T, self.cholesky).T
        return (e0 + (solved @ self.matrix) * self.tau2).view(x.shape).to(x.dtype)


class ChainRun:
    """The chains' record of one ``HMCSolver.sample`` call for B images x K chains."""

    def __init__(
        self,
        latents: torch.Tensor,
        images: torch.Tensor,
        last: torch.Tensor,
        acceptance: torch.Tensor,
        step: torch.Tensor,
        evaluations: int,
        start_loss: torch.Tensor,
        jump_acceptance: torch.Tensor,
    ) -> None:
        self.latents = latents  # (B, K, draws, k): every post-warm-up state
        self.images = images  # (B, S, C, H, W): pixel samples every ``thin`` steps (S = K draws / thin)
        self.last = last  # (B, K, C, H, W): each chain's last pixel sample
        self.acceptance = acceptance  # (B, K) mean acceptance probability after warm-up
        self.step = step  # (B,) frozen step size
        self.evaluations = evaluations  # generator evaluations per image (a Jacobian counts k)
        self.start_loss = start_loss  # (B,) mean data term of the image's starts (before the mode search)
        self.jump_acceptance = jump_acceptance  # (B,) mean acceptance probability of the mode jumps (0 without)


class HMCSolver(Solver):
    """Preconditioned HMC / MALA posterior sampling over the latent, with R-hat/ESS diagnostics per image."""

    name = "hmc"
    work_options = {"mode_steps": 0, "warmup": 0, "draws": 1, "mode_starts": 1}
    needs_generator = True

    def __init__(
        self,
        chains: int = 4,
        mode_starts: int = 32,
        init_scale: float = 1.0,
        mode_steps: int = 40,
        initial_temperature: float = 100.0,
        resample_modes: bool = True,
        warmup: int = 150,
        draws: int = 600,
        thin: int = 5,
        leapfrog_steps: int = 4,
        initial_step: float = 0.5,
        target_acceptance: float = 0.65,
        max_rhat: float = 1.01,
        min_ess: float = 100.0,
        mismatch: float | str = 0.0,
        keep_samples: int = 4,
        jumps: int = 4,
        jump_scale: float = 1.0,
        label: str | None = None,
    ) -> None:
        check_range("solver.chains", chains, 2)
        for key, value in (
            ("draws", draws),
            ("thin", thin),
            ("leapfrog_steps", leapfrog_steps),
            ("initial_step", initial_step),
            ("init_scale", init_scale),
        ):
            check_range(f"solver.{key}", value, 0, low_open=True)
        check_range("solver.jump_scale", jump_scale, 0, low_open=True)
        for key, value in (
            ("mode_steps", mode_steps),
            ("warmup", warmup),
            ("min_ess", min_ess),
            ("jumps", jumps),
        ):
            check_range(f"solver.{key}", value, 0)
        check_range("solver.target_acceptance", target_acceptance, 0, 0.99, low_open=True)
        check_range("solver.max_rhat", max_rhat, 1)
        check_range("solver.initial_temperature", initial_temperature, 1)
        check_range("solver.keep_samples", keep_samples, 0, chains)
        check_range("solver.mode_starts", mode_starts, chains)
        if isinstance(mismatch, str):
            if not Path(mismatch).is_file():
                raise CsgmError(
                    f"solver.mismatch={mismatch!r} is neither a number nor a file; give tau (>= 0) or the "
                    "path of a per-pixel tau map written by benchmarks/coverage.py --write-tau"
                )
        else:
            check_range("solver.mismatch", mismatch, 0)
        self.chains, self.mode_starts = int(chains), int(mode_starts)
        self.init_scale, self.mode_steps = float(init_scale), int(mode_steps)
        self.initial_temperature = float(initial_temperature)
        self.resample_modes = check_flag("solver.resample_modes", resample_modes)
        self.warmup, self.draws, self.thin = int(warmup), int(draws), int(thin)
        self.leapfrog_steps, self.initial_step = int(leapfrog_steps), float(initial_step)
        self.target_acceptance, self.max_rhat, self.min_ess = float(target_acceptance), float(max_rhat), float(min_ess)
        self.mismatch = mismatch
        self.keep_samples = int(keep_samples)
        self.jumps, self.jump_scale = int(jumps), float(jump_scale)
        self.label = label or self.name

    @classmethod
    def shrunk_options(cls, options: dict, scale: float) -> dict:
        """As every solver's, with at least one start per chain."""
        shrunk = super().shrunk_options(options, scale)
        shrunk["mode_starts"] = max(shrunk["mode_starts"], options.get("chains", default_of(cls, "chains")))
        return shrunk

    @property
    def health_limits(self) -> HealthLimits:
        """Its rows are not_converged above ``max_rhat`` or below ``min_ess`` (csgm.recovery.verdicts)."""
        return HealthLimits(max_rhat=self.max_rhat, min_ess=self.min_ess)

    def tau2(self, generator: Generator, measurement: MeasurementModel, dtype: torch.dtype) -> torch.Tensor | None:
        """The mismatch variance per pixel (n,), float64, or None without a mismatch term."""
        if not isinstance(self.mismatch, str) and self.mismatch == 0:
            return None
        if not measurement.operator.linear or not isinstance(measurement.noise, GaussianNoise):
            raise CsgmError(
                f"solver {self.label!r}: the mismatch term needs a linear operator and noise=gaussian, got "
                f"operator {measurement.operator.name!r} with noise={measurement.noise.name}; set solver.mismatch=0"
            )
        if isinstance(self.mismatch, str):
            tau = torch.load(self.mismatch, weights_only=True).double().flatten()
            if tau.numel() != generator.num_pixels:
                raise CsgmError(
                    f"solver.mismatch map {self.mismatch!r} has {tau.numel()} values; the images have "
                    f"{generator.num_pixels} pixels"
                )
        else:
            tau = torch.full((generator.num_pixels,), float(self.mismatch), dtype=torch.float64)
        return tau.pow(2).to(measurement.operator.device)

    def find_modes(self, z: torch.Tensor, target: LatentPosterior) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Levenberg-Marquardt on U from every start: (modes (N, k), their Gauss-Newton matrices (N, k, k),
        generator evaluations per row)."""
        k = z.shape[1]
        value, grad, _ = target(z)
        damping = torch.full((len(z),), 1e-2, dtype=torch.float64, device=z.device)
        eye = torch.eye(k, dtype=torch.float64, device=z.device)
        for step in range(self.mode_steps):
            anneal = self.mode_steps // 2
            temperature = self.initial_temperature ** (1 - step / anneal) if step < anneal else 1.0
            if temperature != target.temperature:  # the objective changed: re-evaluate the current state under it
                target.temperature = temperature
                value, grad, _ = target(z)
            hessian = target.gauss_newton(z)
            delta = torch.linalg.solve(hessian + damping[:, None, None] * eye, -grad.double()[:, :, None])[:, :, 0]
            new_value, new_grad, _ = target(z + delta.to(z.dtype))
            better = torch.isfinite(new_value) & (new_value < value)
            z = torch.where(better[:, None], z + delta.to(z.dtype), z)
            value, grad = torch.where(better, new_value, value), torch.where(better[:, None], new_grad, grad)
            damping = torch.where(better, damping / 3, damping * 3).clamp(1e-8, 1e8)
        return z, target.gauss_newton(z), self.mode_steps * (k + 1) + 1 + k

    def mode_log_weights(
        self, z: torch.Tensor, hessian: torch.Tensor, target: LatentPosterior, batch: int
    ) -> torch.Tensor:
        """Per image (B, S), each start's share of the Laplace mass exp(-U) det(H)^-1/2 of the mode it reached: starts
        closer than 2 in the H-metric are at one mode, which they share equally (unnormalised log weights)."""
        starts, k = self.mode_starts, z.shape[1]
        value = target(z)[0].double()
        log_mass = -value - 0.5 * torch.linalg.slogdet(hessian)[1]
        z_img, h_img = z.view(batch, starts, k).double(), hessian.view(batch, starts, k, k)
        difference = z_img[:, :, None] - z_img[:, None, :]  # (B, S, S, k): z_i - z_j
        distance = torch.einsum("bijk,bikl,bijl->bij", difference, h_img, difference)
        duplicates = (distance < 4.0).sum(2).double()  # starts at the same mode as start i (itself included)
        return log_mass.view(batch, starts) - duplicates.log()

    def redraw_among_modes(
        self, z: torch.Tensor, hessian: torch.Tensor, log_weights: torch.Tensor, image_ids: Sequence[int], seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image, its K chains drawn among its starts' modes by ``log_weights`` (B, S); without
        ``resample_modes``, chain c keeps the mode of start c."""
        batch, starts, chains = len(image_ids), self.mode_starts, self.chains
        offsets = torch.arange(batch, device=z.device)[:, None] * starts
        if not self.resample_modes:
            picked = (torch.arange(chains, device=z.device)[None] + offsets).flatten()
            return z[picked], hessian[picked]
        weight = torch.softmax(log_weights, dim=1)
        uniforms = torch.stack(
            [
                torch.rand(chains, generator=seeded_rng("hmc-modes", seed, int(i)), dtype=torch.float64)
                for i in image_ids
            ]
        ).to(z.device)
        choice = torch.searchsorted(weight.cumsum(1), uniforms).clamp(max=starts - 1)  # (B, K)
        picked = (choice + offsets).flatten()
        return z[picked], hessian[picked]

    def mode_mixture(self, z: torch.Tensor, hessian: torch.Tensor, log_weights: torch.Tensor) -> ModeMixture:
        """The jump proposal of every chain: its image's mixture over the modes, covariance ``jump_scale``^2 H^-1."""
        batch, starts, k = log_weights.shape[0], self.mode_starts, z.shape[1]
        per_chain = self.chains
        return ModeMixture(
            z.view(batch, starts, k).repeat_interleave(per_chain, dim=0),
            hessian.view(batch, starts, k, k).repeat_interleave(per_chain, dim=0),
            log_weights.repeat_interleave(per_chain, dim=0),
            self.jump_scale,
        )

    @torch.no_grad()
    def sample(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> ChainRun:
        """Run the chains (see the module docstring)."""
        generator = self.require_generator(generator)
        measurement = self.sampled(measurement)
        batch, chains, k = len(y), self.chains, generator.latent_dim
        tau2 = self.tau2(generator, measurement, y.dtype)
        search = LatentPosterior(generator, measurement, y.repeat_interleave(self.mode_starts, dim=0), tau2)
        starts = [seeded_rng("hmc-start", seed, int(i), s) for i in image_ids for s in range(self.mode_starts)]
        z = self.init_scale * torch.cat([generator.sample_latents(1, g) for g in starts]).to(
            device=y.device, dtype=y.dtype
        )
        start_loss = measurement.loss(generator(z), search.y).view(batch, self.mode_starts).mean(1)
        modes, hessians, evaluations = self.find_modes(z, search)
        log_weights = self.mode_log_weights(modes, hessians, search, batch)
        z, hessian = self.redraw_among_modes(modes, hessians, log_weights, image_ids, seed)
        mixture = self.mode_mixture(modes, hessians, log_weights) if self.jumps else None
        evaluations = (evaluations + 2) * self.mode_starts // chains  # per chain, with the starts' data term
        target = LatentPosterior(generator, measurement, y.repeat_interleave(chains, dim=0), tau2)
        streams = [seeded_rng("hmc", seed, int(i), c) for i in image_ids for c in range(chains)]
        jump_streams = [seeded_rng("hmc-jump", seed, int(i), c) for i in image_ids for c in range(chains)]
        mass = hessian.view(batch, chains, k, k).mean(1)
        cholesky = torch.linalg.cholesky(mass).repeat_interleave(chains, dim=0)
        adaptation = DualAveraging(
            torch.full((batch,), self.initial_step, dtype=torch.float64, device=y.device), self.target_acceptance
        )
        state = target(z)
        latents, images = [], []
        acceptance = torch.zeros(len(z), dtype=torch.float64, device=y.device)
        jump_acceptance, jump_count = torch.zeros(len(z), dtype=torch.float64, device=y.device), 0
        for t in range(self.warmup + self.draws):
            report_steps(t, self.warmup + self.draws)
            step = (adaptation.step if t < self.warmup else adaptation.final).repeat_interleave(chains).to(y.dtype)
            draws = torch.stack([torch.randn(k + 1, generator=g) for g in streams]).to(device=y.device, dtype=y.dtype)
            proposal, new, log_ratio = hamiltonian_transition(
                z, state, target, step, cholesky, draws[:, :k], self.leapfrog_steps
            )
            probability = log_ratio.clamp(max=0).exp().double()
            uniform = 0.5 * (1 + torch.erf(draws[:, k] / 2**0.5))  # the last draw as a U(0, 1)
            accept = torch.log(uniform) < log_ratio
            z = torch.where(accept[:, None], proposal, z)
            state = accepted_state(accept, new, state)
            for _ in range(self.jumps):
                uniforms = torch.stack([torch.rand(2, generator=g) for g in jump_streams])
                normals = torch.stack([torch.randn(k, generator=g) for g in jump_streams])
                jump_draws = torch.cat([uniforms[:, :1], normals, uniforms[:, 1:]], 1).to(y.device)
                z, state, jump_probability = independence_transition(z, state, target, mixture, jump_draws)
                jump_acceptance, jump_count = jump_acceptance + jump_probability, jump_count + 1
            if t < self.warmup:
                adaptation.update(probability.view(batch, chains).mean(1))
                continue
            acceptance += probability
            latents.append(z.view(batch, chains, k))
            if (t - self.warmup) % self.thin == self.thin - 1:
                images.append(state[2])
        evaluations += (self.warmup + self.draws) * self.leapfrog_steps + 1 + jump_count
        pixels = torch.stack(images, dim=1)  # (N, S_chain, C, H, W)
        if tau2 is not None:
            pixels = pixels + self.mismatch_draws(pixels, target, streams)
        pixels = pixels.view(batch, chains, *pixels.shape[1:])
        return ChainRun(
            latents=torch.stack(latents, dim=2),
            images=pixels.flatten(1, 2),
            last=pixels[:, :, -1],
            acceptance=(acceptance / self.draws).view(batch, chains).float().cpu(),
            step=adaptation.final.float().cpu(),
            evaluations=evaluations * chains,
            start_loss=start_loss,
            jump_acceptance=(jump_acceptance / max(jump_count, 1)).view(batch, chains).mean(1).cpu(),
        )

    @staticmethod
    def mismatch_draws(pixels: torch.Tensor, target: LatentPosterior, streams: list[torch.Generator]) -> torch.Tensor:
        """e ~ p(e | z, y) for each chain's recorded images (N, S, C, H, W), drawn from the chains' own streams."""
        count, n, m = pixels.shape[1], pixels[0, 0].numel(), target.y.shape[1]
        normal = torch.stack([torch.randn(count, n + m, generator=g) for g in streams]).to(pixels.device)
        errors = [target.mismatch_draw(pixels[:, s], normal[:, s, :n], normal[:, s, n:]) for s in range(count)]
        return torch.stack(errors, dim=1)

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        run = self.sample(y, measurement, image_ids, generator, seed)
        batch = len(y)
        samples = run.images.clamp(0, 1)  # the posterior of x restricted to the pixel range
        x_hat = samples.mean(1)
        diagnostics = {
            **chain_diagnostics(run.latents),
            "draws": torch.full((batch,), float(self.draws), dtype=torch.float64),
            "step_size": run.step.double(),
            "jump_acceptance": run.jump_acceptance.double(),
        }
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=as_measurement(measurement).loss(x_hat, y),
            iterations=torch.full((batch,), self.warmup + self.draws, dtype=torch.long),
            dropped_restarts=torch.zeros(batch, dtype=torch.long),
            generator_evaluations=torch.full((batch,), run.evaluations, dtype=torch.long),
            samples=run.last[:, : self.keep_samples].clamp(0, 1),
            pixel_std=samples.std(1, unbiased=False),
            intervals=central_intervals(samples),
            acceptance=run.acceptance.mean(1),
            all_restarts_diverged=~torch.isfinite(x_hat.flatten(1)).all(1).cpu(),
            diagnostics=diagnostics,
            start_loss=run.start_loss,
        )
