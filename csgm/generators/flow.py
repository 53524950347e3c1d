"""A RealNVP-style normalising flow on images (Dinh et al. 2017), invertible so that G has no representation error.

x in [0, 1] -> logit(alpha + (1 - 2 alpha) x) -> squeeze to (4C, H/2, W/2) -> K affine couplings (each transforms
one half of the channels from the other half through a small conv net, after a fixed channel permutation) ->
a learned elementwise affine map -> z ~ N(0, I) with latent_dim = C*H*W. ``decode`` runs it backwards.

Written in torch rather than taken from a flow library: zuko's flows act on feature vectors (MLP couplings, no
convolutional image couplings), and normflows' Glow blocks start with ActNorm, whose first-batch initialisation
differs per process under DDP and with the batch order; every layer here starts the same way everywhere.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from csgm.errors import CsgmError, check_range
from csgm.generators.base import Generator
from csgm.seeding import seeded_rng

__all__ = ["RealNVPFlow", "AffineCoupling", "bits_per_dim"]


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): each 2x2 block of pixels becomes four channels."""
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of ``squeeze``."""
    n, c, h, w = x.shape
    return x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


class AffineCoupling(nn.Module):
    """b -> b * exp(s(a)) + t(a) on the channel split x = (a, b); s = scale * tanh(raw), the last conv starts at
    zero so that the coupling starts as the identity."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.split = channels // 2
        kept, changed = self.split, channels - self.split
        self.net = nn.Sequential(
            nn.Conv2d(kept, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * changed, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(changed, 1, 1))

    def _shift_scale(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, shift = self.net(kept).chunk(2, dim=1)
        return self.scale * torch.tanh(raw), shift

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, log |det dy/dx|) per image."""
        kept, changed = x[:, : self.split], x[:, self.split :]
        log_scale, shift = self._shift_scale(kept)
        return torch.cat([kept, changed * log_scale.exp() + shift], 1), log_scale.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        kept, changed = y[:, : self.split], y[:, self.split :]
        log_scale, shift = self._shift_scale(kept)
        return torch.cat([kept, (changed - shift) * (-log_scale).exp()], 1)


class RealNVPFlow(Generator):
    """G(z) = decode(z) for z ~ N(0, I) of dimension C*H*W; ``log_prob`` is the exact density on [0, 1]^n."""

    defines_likelihood = True

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        coupling_layers: int = 8,
        hidden_channels: int = 64,
        alpha: float = 0.05,
    ) -> None:
        channels, height, width = (int(s) for s in image_shape)
        if height % 2 or width % 2:
            raise CsgmError(
                f"generator=flow needs even image sides (it squeezes 2x2 blocks into channels), not "
                f"{height}x{width}; resize the dataset (dataset.image_size)"
            )
        check_range("generator.arch.coupling_layers", coupling_layers, 1)
        check_range("generator.arch.hidden_channels", hidden_channels, 1)
        check_range("generator.arch.alpha", alpha, 0, low_open=True)
        super().__init__(channels * height * width, (channels, height, width))
        if alpha >= 0.5:
            raise CsgmError(f"generator.arch.alpha={alpha} must be < 0.5 (pixels map to alpha + (1 - 2 alpha) x)")
        self.alpha = float(alpha)
        self.squeezed = (4 * channels, height // 2, width // 2)
        self.couplings = nn.ModuleList(
            AffineCoupling(self.squeezed[0], int(hidden_channels)) for _ in range(int(coupling_layers))
        )
        for i in range(int(coupling_layers)):
            self.register_buffer(
                f"permutation_{i}", torch.randperm(self.squeezed[0], generator=seeded_rng("flow_permutation", i))
            )
        self.loc = nn.Parameter(torch.zeros(self.squeezed))
        self.log_scale = nn.Parameter(torch.zeros(self.squeezed))

    def _permutation(self, i: int) -> torch.Tensor:
        return getattr(self, f"permutation_{i}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log |det dz/dx|) for images x in [0, 1]."""
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_det = (math.log(1 - 2 * self.alpha) - p.log() - (-p).log1p()).flatten(1).sum(1)
        u = squeeze(p.log() - (-p).log1p())
        for i, coupling in enumerate(self.couplings):
            u, step = coupling(u[:, self._permutation(i)])
            log_det = log_det + step
        u = u * self.log_scale.exp() + self.loc
        return u.flatten(1), log_det + self.log_scale.sum()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        u = (z.view(-1, *self.squeezed) - self.loc) * (-self.log_scale).exp()
        for i in reversed(range(len(self.couplings))):
            u = self.couplings[i].inverse(u)[:, torch.argsort(self._permutation(i))]
        x = (torch.sigmoid(unsqueeze(u)) - self.alpha) / (1 - 2 * self.alpha)
        return x.clamp(0.0, 1.0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = self.encode(x)
        return -0.5 * z.pow(2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + log_det


def bits_per_dim(generator: Generator, x: torch.Tensor, noise: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """-log2 P(x) / n per image for ``levels``-level images x in [0, 1], with uniform dequantisation ``noise`` in
    [0, 1): an upper bound of the discrete model's code length (Theis et al. 2016)."""
    dequantised = (x * (levels - 1) + noise) / levels
    n = x[0].numel()
    return (-generator.log_prob(dequantised) + n * math.log(levels)) / (n * math.log(2))
