"""The VAE of the paper: 784-500-500-20 encoder, 20-500-500-784 decoder, softplus, sigmoid output."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from csgm.errors import CsgmError
from csgm.generators.base import Generator

__all__ = ["VAEDecoder", "VAEEncoder"]


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Softplus())
    return nn.Sequential(*layers)


class VAEDecoder(Generator):
    """G(z) = sigmoid(MLP(z)) reshaped to ``image_shape``; ``logits`` gives the pre-sigmoid output."""

    def __init__(
        self, latent_dim: int = 20, image_shape: Sequence[int] = (1, 28, 28), hidden_dims: Sequence[int] = (500, 500)
    ) -> None:
        super().__init__(latent_dim, tuple(image_shape))
        if not hidden_dims or any(width < 1 for width in hidden_dims):
            raise CsgmError(f"generator.arch.hidden_dims={list(hidden_dims)} must be a non-empty list of widths >= 1")
        self.hidden_dims = list(hidden_dims)
        self.net = _mlp([self.latent_dim, *self.hidden_dims, self.num_pixels])

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))

    def decoder_stages(self) -> list:
        """One stage per hidden layer (Linear + Softplus), then the output layer with the sigmoid."""
        hidden = [self.net[i : i + 2] for i in range(0, len(self.net) - 1, 2)]
        return [*hidden, lambda h: torch.sigmoid(self.net[-1](h)).view(-1, *self.image_shape)]


class VAEEncoder(nn.Module):
    """q(z | x) = N(mu(x), diag(exp(logvar(x)))) with the mirrored MLP."""

    def __init__(
        self, latent_dim: int = 20, image_shape: Sequence[int] = (1, 28, 28), hidden_dims: Sequence[int] = (500, 500)
    ) -> None:
        super().__init__()
        n = math.prod(image_shape)
        self.body = _mlp([n, *hidden_dims])
        self.act = nn.Softplus()
        self.head = nn.Linear(hidden_dims[-1], 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.act(self.body(x.flatten(1)))).chunk(2, dim=1)
        return mu, logvar
