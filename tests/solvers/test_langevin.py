"""Posterior sampling is right where the posterior is known in closed form: a linear G makes p(z | y) Gaussian."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.solvers import build_solver

SHAPE = (1, 4, 4)


class LinearGenerator(Generator):
    """G(z) = W z + b."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__(weight.shape[1], SHAPE)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.weight.T + self.bias).view(-1, *SHAPE)


def closed_form(generator, A, y, std):
    """Mean and covariance of G(z) under p(z | y) for y = A G(z) + N(0, std^2 I), z ~ N(0, I)."""
    M = A.matrix.double() @ generator.weight
    precision = torch.eye(M.shape[1], dtype=torch.float64) + M.T @ M / std**2
    cov_z = torch.linalg.inv(precision)
    mean_z = cov_z @ M.T @ (y[0] - A.matrix.double() @ generator.bias) / std**2
    return generator.weight @ mean_z + generator.bias, generator.weight @ cov_z @ generator.weight.T


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    generator = LinearGenerator(
        0.05 * torch.randn(16, 3, generator=g, dtype=torch.float64), torch.full((16,), 0.5, dtype=torch.float64)
    )
    A = build_operator({"name": "gaussian", "normalize": True}, SHAPE, seed=0, m=6).double()
    model = MeasurementModel(A, Noise("gaussian", 0.02), seed=0)
    x = generator(torch.randn(1, 3, generator=g, dtype=torch.float64))
    return generator, A, model, model.measure(x, [0])


def test_mala_matches_the_closed_form_posterior(problem):
    """64 chains x 1500 kept steps (9,600 thinned samples): mean within 0.003 per pixel and the pixel standard
    deviations within 10% of the closed form (their Monte Carlo error is about 2%); acceptance near 0.57."""
    generator, A, model, y = problem
    solver = build_solver(
        {
            "name": "langevin",
            "mala": True,
            "chains": 64,
            "steps": 2000,
            "burn_in": 500,
            "thin": 10,
            "step_size": 1e-3,
            "initial_temperature": 1.0,
        }
    )
    out = solver.solve(y, model, [0], generator, seed=0)
    mean, cov = closed_form(generator, A, y, 0.02)
    torch.testing.assert_close(out.x_hat.flatten(), mean, atol=3e-3, rtol=0)
    torch.testing.assert_close(out.pixel_std.flatten(), cov.diagonal().sqrt(), rtol=0.1, atol=0)
    assert 0.4 < float(out.acceptance[0]) < 0.75
    for level, quantile in ((0.5, 0.6745), (0.8, 1.2816), (0.9, 1.6449), (0.95, 1.9600)):  # Gaussian central ones
        lower, upper = out.intervals[level]
        torch.testing.assert_close((upper - lower).flatten(), 2 * quantile * cov.diagonal().sqrt(), rtol=0.15, atol=0)


def test_samples_are_seeded_per_image_and_chain(problem):
    generator, A, model, y = problem
    solver = build_solver({"name": "langevin", "chains": 2, "steps": 60, "burn_in": 20, "thin": 5, "keep_samples": 2})
    two = model.measure(generator(torch.zeros(2, 3, dtype=torch.float64)), [0, 1])
    together = solver.solve(two, model, [3, 9], generator, seed=1)
    alone = solver.solve(two[1:], model, [9], generator, seed=1)
    torch.testing.assert_close(alone.samples, together.samples[1:])
    assert together.samples.shape == (2, 2, *SHAPE) and together.acceptance is None  # ULA has no Metropolis test


def test_sampling_needs_a_noise_level(problem):
    generator, A, _, y = problem
    with pytest.raises(CsgmError, match=r"needs a known noise level > 0; set noise=gaussian"):
        build_solver({"name": "langevin"}).solve(y, MeasurementModel(A, Noise("none")), [0], generator)
