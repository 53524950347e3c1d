"""Denoising diffusion priors (Ho et al. 2020; DDIM, Song et al. 2021) as generators.

A diffusion prior works on images u = 2 x - 1 in [-1, 1] ("model scale"); its forward process is
x_t = sqrt(abar_t) u + sqrt(1 - abar_t) eps with abar_t from diffusers' ``DDPMScheduler`` (the schedule's one
source). ``predict_noise(x_t, t)`` is the network's epsilon estimate, from which follow Tweedie's estimate of u,
the score and the DDIM update (closed forms here; tests check them against diffusers' ``DDIMScheduler.step``).

As a ``Generator`` (latent_dim = C*H*W), G(z) is the deterministic DDIM map (eta = 0) from x_T = z ~ N(0, I) to
an image in ``sample_steps`` network evaluations, so every latent solver (CSGM, Langevin, ILO over its steps) runs
on it unchanged; the diffusion solvers (csgm.solvers.dps, diffusion_langevin) use ``predict_noise`` directly.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import torch

from csgm.errors import CsgmError, check_choice, check_range
from csgm.generators.base import Generator

__all__ = ["BETA_SCHEDULES", "DiffusionGenerator", "PREDICTIONS", "UNetDiffusion", "ddim_times", "require_diffusion"]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = ("epsilon", "v_prediction")


def ddim_times(timesteps: int, steps: int) -> list[int]:
    """The ``steps`` timesteps of a DDIM sampler over a ``timesteps``-step schedule, descending, as diffusers'
    ``DDIMScheduler`` with ``timestep_spacing='trailing'`` sets them (the first is T - 1; the last step lands on
    t = -1, i.e. abar = 1: the clean image)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=timesteps, timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


class DiffusionGenerator(Generator):
    """The schedule and the samplers' closed forms of a diffusion prior; subclasses implement ``predict_noise``."""

    defines_score = True  # solvers that need the score (dps, diffusion_langevin) check this

    def __init__(
        self,
        image_shape: Sequence[int],
        timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        sample_steps: int = 20,
        prediction: str = "epsilon",
    ) -> None:
        from diffusers import DDPMScheduler

        check_range("generator.arch.timesteps", timesteps, 2)
        check_range("generator.arch.sample_steps", sample_steps, 1, timesteps)
        check_range("generator.arch.beta_start", beta_start, 0, low_open=True)
        check_range("generator.arch.beta_end", beta_end, beta_start, 1)
        check_choice("generator.arch.beta_schedule", beta_schedule, BETA_SCHEDULES)
        check_choice("generator.arch.prediction", prediction, PREDICTIONS)
        image_shape = tuple(int(s) for s in image_shape)
        super().__init__(math.prod(image_shape), image_shape)
        scheduler = DDPMScheduler(
            num_train_timesteps=int(timesteps), beta_schedule=beta_schedule, beta_start=beta_start, beta_end=beta_end
        )
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.detach().clone().float(), persistent=False)
        self.timesteps, self.sample_steps, self.prediction = int(timesteps), int(sample_steps), prediction
        self.clip = True  # G(z) in [0, 1] (see ``with_sample_steps``)

    # --- the network -------------------------------------------------------------------------------------------
    def network(self, x_t: torch.Tensor, t: int) -> torch.Tensor:  # pragma: no cover - abstract
        """The raw network output at x_t (model scale) and integer timestep t (epsilon or v)."""
        raise NotImplementedError

    def predict_noise(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """The epsilon estimate at x_t (N, C, H, W) and timestep t (one network evaluation per row)."""
        out = self.network(x_t, t)
        if self.prediction == "epsilon":
            return out
        a = self.alpha_bar(t, x_t)
        return a.sqrt() * out + (1 - a).sqrt() * x_t  # v = sqrt(abar) eps - sqrt(1 - abar) u

    # --- closed forms ------------------------------------------------------------------------------------------
    def alpha_bar(self, t: int, like: torch.Tensor) -> torch.Tensor:
        """abar_t as a scalar tensor like ``like`` (t = -1: 1, the clean image)."""
        value = self.alphas_cumprod[t] if t >= 0 else torch.ones((), device=self.alphas_cumprod.device)
        return value.to(device=like.device, dtype=like.dtype)

    def noise_level(self, t: int) -> float:
        """sigma_t = sqrt((1 - abar_t) / abar_t): the noise of x_t / sqrt(abar_t) = u + sigma_t eps."""
        a = float(self.alphas_cumprod[t])
        return math.sqrt((1 - a) / a)

    def tweedie(self, x_t: torch.Tensor, t: int, eps: torch.Tensor) -> torch.Tensor:
        """E[u | x_t] from the epsilon estimate (Tweedie's formula): (x_t - sqrt(1 - abar) eps) / sqrt(abar)."""
        a = self.alpha_bar(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def ddim_step(
        self,
        x_t: torch.Tensor,
        t: int,
        t_prev: int,
        eps: torch.Tensor,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One DDIM update x_t -> x_{t_prev} (Song et al. 2021, eq. 12): sqrt(abar') u_hat + sqrt(1 - abar' -
        s^2) eps + s noise, s = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar'); eta = 0 is deterministic,
        eta = 1 is DDPM's ancestral step."""
        a, a_prev = self.alpha_bar(t, x_t), self.alpha_bar(t_prev, x_t)
        u_hat = self.tweedie(x_t, t, eps)
        s = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
        out = a_prev.sqrt() * u_hat + (1 - a_prev - s**2).clamp(min=0).sqrt() * eps
        return out if noise is None or eta == 0 else out + s * noise

    def ddim_invert(self, u: torch.Tensor, steps: int | None = None, iterations: int = 10) -> torch.Tensor:
        """The latent z with G(z) = u (model scale) for the deterministic DDIM map with ``steps`` steps: each step
        inverted by fixed-point iteration on x_t = (x_prev - c eps(x_t)) / a (exact to tolerance where it converges)."""
        times = ddim_times(self.timesteps, steps or self.sample_steps)
        x_prev = u
        for t, t_prev in reversed(list(zip(times, [*times[1:], -1]))):
            a, a_prev = self.alpha_bar(t, u), self.alpha_bar(t_prev, u)
            x_t = x_prev
            for _ in range(iterations):
                eps = self.predict_noise(x_t, t)
                x0 = (x_prev - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
                x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
            x_prev = x_t
        return x_prev.flatten(1)

    # --- the generator G(z) ------------------------------------------------------------------------------------
    @staticmethod
    def to_pixels(u: torch.Tensor) -> torch.Tensor:
        """Model scale [-1, 1] -> images in [0, 1]."""
        return ((u + 1) / 2).clamp(0.0, 1.0)

    @staticmethod
    def from_pixels(x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> model scale."""
        return 2 * x - 1

    def with_sample_steps(self, steps: int, clip: bool = True) -> DiffusionGenerator:
        """This prior (sharing its network) whose G(z) takes ``steps`` DDIM steps; ``clip=False``: G(z) = (u + 1) / 2
        unclipped, so that pixels the map pushes outside [0, 1] keep their gradient (for latent searches)."""
        check_range("solver.ddim_steps", steps, 1, self.timesteps)
        view = object.__new__(type(self))
        view.__dict__ = {**self.__dict__, "sample_steps": int(steps), "clip": bool(clip)}
        return view

    def decoder_stages(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """One stage per DDIM step (the first takes the flat latent, the last returns pixels in [0, 1])."""
        times = ddim_times(self.timesteps, self.sample_steps)
        return [partial(self._stage, i, t, t_prev) for i, (t, t_prev) in enumerate(zip(times, [*times[1:], -1]))]

    def _stage(self, index: int, t: int, t_prev: int, value: torch.Tensor) -> torch.Tensor:
        x_t = value.view(-1, *self.image_shape) if index == 0 else value
        out = self.ddim_step(x_t, t, t_prev, self.predict_noise(x_t, t))
        if t_prev >= 0:
            return out
        return self.to_pixels(out) if self.clip else (out + 1) / 2

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        value = z
        for stage in self.decoder_stages():
            value = stage(value)
        return value


class UNetDiffusion(DiffusionGenerator):
    """A diffusion prior whose network is diffusers' ``UNet2DModel``: ResNet blocks per level, self-attention in
    the middle block (diffusers' default) and, with ``attention``, at the coarsest level too."""

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (16, 32, 32),
        layers_per_block: int = 1,
        norm_groups: int = 8,
        attention: bool = False,
        timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        sample_steps: int = 20,
        prediction: str = "epsilon",
    ) -> None:
        from diffusers import UNet2DModel
        from diffusers.models.attention_processor import Attention, AttnProcessor

        super().__init__(image_shape, timesteps, beta_schedule, beta_start, beta_end, sample_steps, prediction)
        c, h, w = self.image_shape
        channels = [int(v) for v in channels]
        if len(channels) < 2 or any(v < 1 or v % norm_groups for v in channels):
            raise CsgmError(
                f"generator.arch.channels={channels} must list >= 2 widths, each a multiple of "
                f"generator.arch.norm_groups={norm_groups}"
            )
        scale = 2 ** (len(channels) - 1)
        if h % scale or w % scale:
            raise CsgmError(
                f"generator=diffusion with {len(channels)} levels halves the image {len(channels) - 1} times, so "
                f"its sides must be multiples of {scale}, not {h}x{w}; use fewer generator.arch.channels or resize "
                "the dataset (dataset.image_size)"
            )
        check_range("generator.arch.layers_per_block", layers_per_block, 1)
        down = ["DownBlock2D"] * len(channels)
        up = ["UpBlock2D"] * len(channels)
        if attention:  # self-attention at the coarsest level
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(
            sample_size=(h, w),
            in_channels=c,
            out_channels=c,
            block_out_channels=tuple(channels),
            layers_per_block=int(layers_per_block),
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=int(norm_groups),
        )
        # the plain attention processor (the middle block's self-attention): the same maps as PyTorch's fused
        # attention, and it supports forward-mode derivatives (Jacobian-vector products through G)
        for module in self.unet.modules():
            if isinstance(module, Attention):
                module.set_processor(AttnProcessor())

    def network(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        steps = torch.full((len(x_t),), int(t), dtype=torch.long, device=x_t.device)
        return self.unet(x_t, steps).sample

    def network_at(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The raw network output at per-row timesteps t (N,), for training."""
        return self.unet(x_t, t).sample


def require_diffusion(generator: Generator | None, solver: str) -> DiffusionGenerator:
    """The generator of a solver that needs a diffusion prior's score, or one line saying how to give it."""
    if generator is None:
        raise CsgmError(f"the {solver} solver needs a diffusion checkpoint (checkpoint=PATH from generator=diffusion)")
    if not isinstance(generator, DiffusionGenerator):
        raise CsgmError(
            f"the {solver} solver needs a diffusion prior's score, but the checkpoint holds a "
            f"{type(generator).__name__}; pass a checkpoint trained with generator=diffusion, or use solver=csgm"
        )
    return generator
