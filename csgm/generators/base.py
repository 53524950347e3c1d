"""The generator contract: (N, k) latents -> (N, C, H, W) images in [0, 1]."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from csgm.errors import CsgmError

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

    def stages(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """G as a list of maps whose composition is ``forward`` (layer by layer), for solvers that optimise an
        intermediate layer (ILO). A generator that exposes no layers is one stage."""
        return [self.forward]

    def split(self, layer: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        """(head, tail) with G = tail o head and head = the first ``layer`` stages (1 <= layer < number of stages)."""
        stages = self.stages()
        if not 1 <= layer < len(stages):
            raise CsgmError(f"layer={layer} is not an intermediate layer of this {type(self).__name__}: it has "
                            f"{len(stages)} stages, so layer must be in [1, {len(stages) - 1}]" if len(stages) > 1 else
                            f"{type(self).__name__} exposes no intermediate layers (Generator.stages)")

        def compose(parts):
            def run(value: torch.Tensor) -> torch.Tensor:
                for part in parts:
                    value = part(value)
                return value
            return run

        return compose(stages[:layer]), compose(stages[layer:])

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
