"""The diffusion solvers on a prior whose score is exact (Gaussian data, tests.diffusion_helpers), where the
posterior and the CSGM optimum are closed form; NFE counts; every differentiable measurement model."""

from __future__ import annotations

import pytest
import torch

from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_noise, build_operator
from csgm.results import COVERAGE_LEVELS
from csgm.solvers import CSGMSolver, build_solver
from tests.diffusion_helpers import GaussianDiffusion, gaussian_posterior

SHAPE = (1, 4, 4)


def gaussian_problem(m: int = 8, count: int = 3):
    """(prior, measurement model, y, ids, closed-form posterior mean (B, n), covariance) for m Gaussian
    measurements with noise std 0.1 of images drawn near the prior."""
    prior = GaussianDiffusion(SHAPE, mu=0.0, s=0.4)  # pixels N(0.5, 0.2^2): little mass outside [0, 1]
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=m)
    model = MeasurementModel(operator, Noise("gaussian", 0.1), seed=0)
    x = (0.5 + 0.2 * torch.randn(count, *SHAPE, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    ids = list(range(count))
    y = model.measure(x, ids)
    mean, covariance = gaussian_posterior(prior, operator.matrix, y, 0.1)
    return prior, model, y, ids, mean, covariance


def test_annealed_langevin_samples_the_closed_form_posterior():
    prior, model, y, ids, mean, covariance = gaussian_problem()
    solver = build_solver(
        {"name": "diffusion_langevin", "chains": 256, "levels": 100, "steps_per_level": 10, "keep_samples": 2}
    )
    out = solver.solve(y, model, ids, prior, seed=0)
    error = (out.x_hat.flatten(1).double() - mean).norm(dim=1)
    prior_distance = (0.5 - mean).norm(dim=1)  # 0.51 ... 0.63
    assert bool((error < 0.25 * prior_distance).all()), (error, prior_distance)  # 0.04 ... 0.09
    exact_std = covariance.diagonal().sqrt().mean()  # 0.141
    assert float(out.pixel_std.mean()) == pytest.approx(float(exact_std), rel=0.2)
    assert sorted(out.intervals) == sorted(COVERAGE_LEVELS) and out.samples.shape == (3, 2, *SHAPE)
    assert out.generator_evaluations.tolist() == [256 * 100 * 10] * 3


def test_dps_samples_centre_on_the_closed_form_posterior_mean():
    """DPS draws one posterior sample per image: 200 images with the same y (different ids, so different draws)
    average to near the posterior mean, with about the posterior's spread (DPS approximates p(y | x_t))."""
    prior, model, y, _, mean, covariance = gaussian_problem(count=1)
    draws = 200
    solver = build_solver({"name": "dps", "steps": 100, "weight": 0.3})
    out = solver.solve(y.repeat(draws, 1), model, list(range(draws)), prior, seed=0)
    samples = out.x_hat.flatten(1).double()
    assert float((samples.mean(0) - mean[0]).norm()) < 0.15 * float((0.5 - mean[0]).norm())  # 0.044 vs 0.63
    spread = float(samples.std(0).mean()) / float(covariance.diagonal().sqrt().mean())
    assert 0.6 < spread < 1.5, spread
    assert out.generator_evaluations.tolist() == out.vjps.tolist() == [100] * draws


def test_csgm_through_ddim_reaches_the_ridge_optimum():
    """For Gaussian data every DDIM step is affine, so G(z) = b + c z and min ||A G(z) - y||^2 + lambda ||z||^2 is
    a ridge problem with a closed form."""
    prior, model, y, ids, _, _ = gaussian_problem(m=12)
    solver = build_solver(
        {"name": "csgm_ddim", "ddim_steps": 4, "lambda_z": 1.0, "lr": 0.05, "iterations": 600, "restarts": 1}
    )
    out = solver.solve(y, model, ids, prior, seed=0)
    sampler = prior.with_sample_steps(4, clip=False)
    with torch.no_grad():
        b = sampler(torch.zeros(1, 16)).flatten(1).double()
        c = float(sampler(torch.eye(16)[:1]).flatten(1)[0, 0].double() - b[0, 0])
    matrix = model.operator.matrix.double()
    design = c * matrix
    z = torch.linalg.solve(
        design.T @ design + torch.eye(16, dtype=torch.float64), design.T @ (y.double() - b @ matrix.T).T
    )
    expected = b + c * z.T
    torch.testing.assert_close(out.x_hat.flatten(1).double(), expected, rtol=0, atol=2e-3)
    plain = CSGMSolver(lambda_z=1.0, lr=0.05, iterations=600, restarts=1).solve(y, model, ids, sampler, seed=0)
    assert out.generator_evaluations.tolist() == (4 * plain.generator_evaluations).tolist()  # NFEs: 4 per G


@pytest.mark.parametrize(
    "operator,noise",
    [
        ({"name": "phase_retrieval"}, {"name": "gaussian", "std": 0.05}),
        ({"name": "one_bit"}, {"name": "none"}),
        ({"name": "identity"}, {"name": "poisson", "scale": 100.0}),
    ],
)
def test_dps_fits_every_differentiable_measurement_model(operator, noise):
    """DPS's guidance lowers each model's own data term against unguided reverse diffusion (the prior's samples)."""
    prior = GaussianDiffusion(SHAPE, mu=0.0, s=0.4)
    model = MeasurementModel(build_operator(operator, SHAPE, seed=0, m=12), build_noise(noise), seed=0)
    x = (0.5 + 0.2 * torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    ids = [0, 1, 2, 3]
    y = model.measure(x, ids)
    guided = build_solver({"name": "dps", "steps": 50, "weight": 0.3}).solve(y, model, ids, prior, seed=0)
    free = build_solver({"name": "dps", "steps": 50, "weight": 1e-9}).solve(y, model, ids, prior, seed=0)
    assert bool(torch.isfinite(guided.x_hat).all())
    assert float(guided.measurement_loss.mean()) < 0.7 * float(free.measurement_loss.mean())
