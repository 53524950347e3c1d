"""A diffusion prior whose noise predictor is exact: data u ~ N(mu, s^2 I) in model scale, so that
E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar), and the posterior of a linear
Gaussian problem is closed form."""

from __future__ import annotations

import torch

from csgm.generators.diffusion import DiffusionGenerator


class GaussianDiffusion(DiffusionGenerator):
    """The exact epsilon-predictor of the data law N(mu, s^2 I) in model scale (pixels: N((mu + 1) / 2, s^2 / 4))."""

    def __init__(self, image_shape, mu: float = 0.0, s: float = 0.5, timesteps: int = 1000, sample_steps: int = 50):
        super().__init__(image_shape, timesteps=timesteps, sample_steps=sample_steps)
        self.mu, self.s = mu, s

    def network(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        a = self.alpha_bar(t, x_t)
        return (1 - a).sqrt() * (x_t - a.sqrt() * self.mu) / (a * self.s**2 + 1 - a)


def gaussian_posterior(
    prior: GaussianDiffusion, matrix: torch.Tensor, y: torch.Tensor, std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (B, n), covariance (n, n)) of x in [0, 1] pixels given y = A x + N(0, std^2) under the prior's law."""
    n = matrix.shape[1]
    m0, s0 = (prior.mu + 1) / 2, prior.s / 2
    precision = torch.eye(n, dtype=torch.float64) / s0**2 + matrix.double().T @ matrix.double() / std**2
    covariance = torch.linalg.inv(precision)
    mean = (m0 / s0**2 + y.double() @ matrix.double() / std**2) @ covariance
    return mean, covariance
