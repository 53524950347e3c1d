"""The generator contract: (N, k) latents z ~ N(0, I) -> (N, C, H, W) images in [0, 1]."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from csgm.errors import CsgmError, check_range

__all__ = ["Generator", "LatentGaussian"]


class LatentGaussian(nn.Module):
    """The affine map w -> mean + scale_tril w that turns standard-normal latents w into N(mean, scale_tril scale_tril^T).

    A generator trained on latents of another Gaussian (GLO fits one to its learned codes) carries this map at
    its input, so that its latents are standard normal again and every solver, prior term and sampler stays right.
    """

    def __init__(self, mean: torch.Tensor, scale_tril: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("scale_tril", scale_tril.detach().clone())

    @classmethod
    def fit(cls, codes: torch.Tensor, ridge: float = 1e-4) -> "LatentGaussian":
        """The maximum-likelihood Gaussian of ``codes`` (N, k), its covariance raised by ``ridge`` on the diagonal."""
        codes = codes.detach().double()
        mean = codes.mean(0)
        centred = codes - mean
        covariance = centred.T @ centred / max(len(codes) - 1, 1) + ridge * torch.eye(codes.shape[1], dtype=codes.dtype)
        return cls(mean.float(), torch.linalg.cholesky(covariance).float())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mean + w @ self.scale_tril.T


class Generator(nn.Module):
    """Base class of every generator G. Subclasses set ``latent_dim`` and ``image_shape`` and implement ``decode``.

    ``forward(w) = decode(latent_map(w))``: latents are standard normal by contract (``sample_latents`` is the one
    place that draws them); ``latent_map`` is None unless the generator was trained on another latent law.
    """

    latent_dim: int
    image_shape: tuple[int, int, int]
    defines_likelihood: bool = False  # True for generators with an exact density (``log_prob``), e.g. flows

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        check_range("generator.arch.latent_dim", latent_dim, 1)
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_map: LatentGaussian | None = None

    @property
    def num_pixels(self) -> int:
        """n = C * H * W."""
        return math.prod(self.image_shape)

    def sample_latents(self, count: int, rng: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``count`` latents from G's prior N(0, I), drawn from ``rng`` (CPU; callers move them)."""
        return torch.randn(count, self.latent_dim, generator=rng, dtype=dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.decode(w if self.latent_map is None else self.latent_map(w))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per image, in nats on the [0, 1] pixel scale, for generators with ``defines_likelihood``."""
        raise CsgmError(f"{type(self).__name__} defines no likelihood (only normalising flows do)")

    def decoder_stages(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """``decode`` as a list of maps whose composition is ``decode`` (layer by layer); one stage by default."""
        return [self.decode]

    def stages(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """G as a list of maps whose composition is ``forward``, for solvers that optimise an intermediate layer
        (ILO): the decoder's stages, the latent map folded into the first."""
        stages = self.decoder_stages()
        if self.latent_map is not None:
            stages[0] = _compose([self.latent_map, stages[0]])
        return stages

    def split(
        self, layer: int
    ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        """(head, tail) with G = tail o head and head = the first ``layer`` stages (1 <= layer < number of stages)."""
        stages = self.stages()
        if not 1 <= layer < len(stages):
            raise CsgmError(
                f"solver.layer={layer} is not an intermediate layer of this {type(self).__name__}: it has "
                f"{len(stages)} stages, so layer must be in [1, {len(stages) - 1}]"
                if len(stages) > 1
                else f"{type(self).__name__} exposes no intermediate layers (Generator.stages)"
            )
        return _compose(stages[:layer]), _compose(stages[layer:])


def _compose(parts: list[Callable[[torch.Tensor], torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(value: torch.Tensor) -> torch.Tensor:
        for part in parts:
            value = part(value)
        return value

    return run
