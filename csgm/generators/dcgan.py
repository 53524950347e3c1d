"""DCGAN (Radford et al.) generator and discriminator, for any size s0 * 2^L with L >= 2."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from csgm.errors import CsgmError, check_range
from csgm.generators.base import Generator

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "dcgan_layout"]


def dcgan_layout(height: int, width: int, max_base: int = 8) -> tuple[int, int, int]:
    """Return (h0, w0, L): the base size and the number of 2x upsamplings with h0 * 2^L = height.

    L is the largest number of halvings that keeps both base sides >= 3 (64 -> 4x4 with L = 4,
    28 -> 7x7 with L = 2, 32 -> 4x4 with L = 3).
    """
    levels = 0
    while (
        height % 2 ** (levels + 1) == 0
        and width % 2 ** (levels + 1) == 0
        and height // 2 ** (levels + 1) >= 3
        and width // 2 ** (levels + 1) >= 3
    ):
        levels += 1
    h0, w0 = height // 2**levels, width // 2**levels
    if levels < 2 or max(h0, w0) > max_base:
        raise CsgmError(
            f"DCGAN cannot produce {height}x{width} images: height and width must be s * 2^L with L >= 2 "
            f"and base s in 3..{max_base} (for example 28, 32, 48, 64, 128); resize the dataset (dataset.image_size)"
        )
    return h0, w0, levels


class DCGANGenerator(Generator):
    """z (N, k) -> dense to (C0, h0, w0) -> L transposed convs (x2 each) with batch norm -> tanh -> [0, 1].

    With the defaults at 64x64x3: 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3.
    """

    def __init__(
        self, latent_dim: int = 100, image_shape: Sequence[int] = (3, 64, 64), base_channels: int = 64
    ) -> None:
        super().__init__(latent_dim, tuple(image_shape))
        check_range("generator.arch.base_channels", base_channels, 1)
        channels, height, width = self.image_shape
        self.h0, self.w0, levels = dcgan_layout(height, width)
        widths = [base_channels * 2 ** (levels - 1 - i) for i in range(levels)]
        self.project = nn.Sequential(
            nn.Linear(self.latent_dim, widths[0] * self.h0 * self.w0, bias=False),
            nn.Unflatten(1, (widths[0], self.h0, self.w0)),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        )
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.body(self.project(z)) + 1.0) / 2.0

    def decoder_stages(self) -> list:
        """The projection, one stage per upsampling block (conv, norm, ReLU), then the output conv with tanh."""
        blocks = [self.body[i : i + 3] for i in range(0, len(self.body) - 2, 3)]
        return [self.project, *blocks, lambda h: (self.body[-2:](h) + 1.0) / 2.0]


class DCGANDiscriminator(nn.Module):
    """Mirror of the generator: strided convs with leaky ReLU (batch norm after the first) -> one logit."""

    def __init__(self, image_shape: Sequence[int] = (3, 64, 64), base_channels: int = 64) -> None:
        super().__init__()
        check_range("generator.training.disc_base_channels", base_channels, 1)
        channels, height, width = image_shape
        h0, w0, levels = dcgan_layout(height, width)
        widths = [base_channels * 2**i for i in range(levels)]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(widths[-1], 1, (h0, w0)), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x in [0, 1] -> logits (N,)."""
        return self.net(x * 2.0 - 1.0).squeeze(1)
