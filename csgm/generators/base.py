"""The generator contract: (N, k) latents -> (N, C, H, W) images in [0, 1]."""

from __future__ import annotations

import math

import torch
from torch import nn

from csgm.errors import check_range

__all__ = ["Generator"]


class Generator(nn.Module):
    """Base class of every generator G. Subclasses set ``latent_dim`` and ``image_shape``."""

    latent_dim: int
    image_shape: tuple[int, int, int]

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        check_range("generator.arch.latent_dim", latent_dim, 1)
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)

    @property
    def num_pixels(self) -> int:
        """n = C * H * W."""
        return math.prod(self.image_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
