"""Gauss-Newton / Levenberg-Marquardt latent solver: closed-form and independent-optimiser answers, the
measurement weights against their formulas, batch independence and the work it reports."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from csgm.errors import CsgmError
from csgm.generators import Generator, VAEDecoder
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.solvers import build_solver
from csgm.solvers.gauss_newton import GaussNewtonSolver, measurement_weights

SHAPE = (1, 4, 4)


class AffineGenerator(Generator):
    """G(z) = W z + b, reshaped: Gauss-Newton's model is exact and the MAP has a closed form."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__(weight.shape[1], SHAPE)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def decode(self, z):
        return (z @ self.weight.T + self.bias).view(-1, *SHAPE)


class CountingDecoder(VAEDecoder):
    """A VAE decoder that counts the rows it decodes (plain forward passes and the primal of each Jacobian)."""

    rows = 0

    def decode(self, z):
        self.rows += z.shape[0]
        return super().decode(z)


def affine_problem(m=10, k=3, noise=None, positive=False):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(16, k, generator=g, dtype=torch.float64) / 4
    bias = torch.rand(16, generator=g, dtype=torch.float64) + (1.0 if positive else 0.0)
    generator = AffineGenerator(weight.abs() / 4 if positive else weight, bias)
    operator = build_operator({"name": "inpaint" if positive else "gaussian"}, SHAPE, seed=0, m=m).double()
    model = MeasurementModel(operator, noise or Noise("gaussian", 0.1), seed=0)
    x = generator(torch.randn(3, k, generator=g, dtype=torch.float64))
    return generator, model, model.measure(x, [0, 1, 2])


def solver(**options) -> GaussNewtonSolver:
    base = dict(iterations=30, restarts=1, start_bank=0, tol=0.0, geodesic=0.0)
    return GaussNewtonSolver(**{**base, **options})


@pytest.mark.parametrize("lambda_z", [0.0, 0.5])
def test_affine_generator_reaches_the_closed_form_map_in_a_few_steps(lambda_z):
    generator, model, y = affine_problem()
    M = model.operator.matrix @ generator.weight
    target = y - generator.bias @ model.operator.matrix.T
    expected = torch.linalg.solve(M.T @ M + lambda_z * torch.eye(3, dtype=M.dtype), M.T @ target.T).T
    out = solver(lambda_z=lambda_z, tol=1e-12).solve(y, model, [0, 1, 2], generator)
    torch.testing.assert_close(out.z, expected, rtol=1e-8, atol=1e-8)
    assert bool(out.converged.all()) and int(out.iterations.max()) <= 12  # mu shrinks 3x a step from 1


def test_poisson_estimate_matches_an_independent_optimiser():
    """Fisher-weighted steps reach the minimiser scipy finds for the same Poisson deviance + prior."""
    generator, model, y = affine_problem(m=12, noise=Noise("poisson", scale=50.0), positive=True)
    out = solver(lambda_z=0.1, tol=1e-14, iterations=60).solve(y, model, [0, 1, 2], generator)
    M, offset = model.operator.to_dense() @ generator.weight, model.operator.to_dense() @ generator.bias
    for row in range(3):
        counts = y[row].numpy()

        def objective(z):
            rate = np.clip(M.numpy() @ z + offset.numpy(), 1e-12, None)
            deviance = 2 * np.sum(rate - counts + counts * np.log(np.where(counts > 0, counts, 1) / rate))
            return deviance + 0.1 * z @ z

        reference = scipy.optimize.minimize(
            objective, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}
        ).x
        np.testing.assert_allclose(out.z[row].numpy(), reference, atol=1e-6)


def test_weights_are_the_irls_and_fisher_weights_of_each_noise_model():
    prediction = torch.tensor([[0.5, 2.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([[1.5, 2.0, 1.0]], dtype=torch.float64)
    operator = build_operator({"name": "inpaint"}, SHAPE, seed=0, m=3)  # nonnegative: every noise model applies
    residual = prediction - y
    cases = {
        Noise("gaussian", 0.1): torch.tensor([[2.0, 2.0, 2.0]], dtype=torch.float64),
        Noise("student_t", 0.5, df=3.0): 2 * 4.0 / (3.0 + residual.pow(2) / 0.25),
        Noise("poisson", scale=10.0): 2 / prediction,
    }
    for noise, expected in cases.items():
        model = MeasurementModel(operator, noise)
        p = prediction.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(model.data_term(p, y).sum(), p)
        weights = measurement_weights(model, prediction, y, gradient)
        expected = torch.where(residual == 0, torch.full_like(expected, 2.0), expected)  # r = 0: no ratio, weight 2
        torch.testing.assert_close(weights, expected)


def test_results_and_work_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    generator = VAEDecoder(4, SHAPE, [16]).double().eval().requires_grad_(False)
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=8).double()
    model = MeasurementModel(operator, Noise("gaussian", 0.05), seed=0)
    ids = [3, 7, 11, 20]
    y = model.measure(torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64), ids)
    gn = GaussNewtonSolver(iterations=8, restarts=3, ambiguity=0.5, start_bank=64)
    together = gn.solve(y, model, ids, generator, seed=5)
    for i in range(4):
        alone = GaussNewtonSolver(iterations=8, restarts=3, ambiguity=0.5, start_bank=64).solve(
            y[i : i + 1], model, ids[i : i + 1], generator, seed=5
        )
        torch.testing.assert_close(alone.x_hat, together.x_hat[i : i + 1], rtol=1e-10, atol=1e-10)
        for field in ("generator_evaluations", "jvps", "iterations", "converged"):
            assert bool((getattr(alone, field) == getattr(together, field)[i : i + 1]).all()), field


@pytest.mark.parametrize("geodesic", [0.0, 0.75])
def test_reported_work_is_the_work_done(geodesic):
    """generator_evaluations = rows G decoded (trial points, probes, Jacobian primals, final images);
    jvps = k forward-mode products per row of every Jacobian."""
    torch.manual_seed(0)
    generator = CountingDecoder(4, SHAPE, [16]).eval().requires_grad_(False)
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=8)
    model = MeasurementModel(operator, Noise("gaussian", 0.05), seed=0)
    y = model.measure(torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1)), [0, 1, 2])
    gn = GaussNewtonSolver(iterations=4, restarts=2, start_bank=0, geodesic=geodesic)
    jacobian_rows = []
    jacobian = gn.jacobian
    gn.jacobian = lambda z, predict: (jacobian_rows.append(len(z)), jacobian(z, predict))[1]
    out = gn.solve(y, model, [0, 1, 2], generator)
    assert int(out.generator_evaluations.sum()) == generator.rows
    assert int(out.jvps.sum()) == 4 * sum(jacobian_rows)
    assert int(out.vjps.sum()) == 0 and int(out.iterations.max()) <= 4
    # rows leave when converged: never more than a Jacobian and the trial (+ probe) per iteration, per restart
    per_iteration = 1 + 4 + 1 + (geodesic > 0)
    assert bool((out.generator_evaluations + out.jvps <= 2 * (1 + 4 + 4 * per_iteration) + 1).all())


def test_bad_options_are_refused_in_one_line():
    with pytest.raises(CsgmError, match="solver.start_bank=1 must hold at least the 2 restarts"):
        GaussNewtonSolver(restarts=2, start_bank=1)
    with pytest.raises(CsgmError, match=r"solver.accept=1.5 must be in \[0, 1\]"):
        build_solver({"name": "gauss_newton", "accept": 1.5})
