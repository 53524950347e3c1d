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
from csgm.solvers.csgm import initial_latents
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


class QuadraticGenerator(Generator):
    """G(z) = W z + b + (U z)^2 (elementwise), reshaped: a nonlinear G whose residuals have curvature."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, mix: torch.Tensor):
        super().__init__(weight.shape[1], SHAPE)
        for name, value in (("weight", weight), ("bias", bias), ("mix", mix)):
            self.register_buffer(name, value)

    def decode(self, z):
        return (z @ self.weight.T + self.bias + (z @ self.mix.T).pow(2)).view(-1, *SHAPE)


class CountingDecoder(VAEDecoder):
    """A VAE decoder that counts the rows it decodes (plain forward passes and the primal of each Jacobian) and
    the rows its backward passes carry (VJPs)."""

    rows = 0
    backward_rows = 0

    def decode(self, z):
        self.rows += z.shape[0]
        out = super().decode(z)
        if out.requires_grad:
            out.register_hook(lambda grad: setattr(self, "backward_rows", self.backward_rows + grad.shape[0]))
        return out


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


def large_residual_problem(lambda_z=0.1, k=3, m=10):
    """(G, model, y, z*): a quadratic G and y = A G(z*) - r* with r* = -lambda J (J^T J)^-1 z* + v, v a unit
    vector orthogonal to the columns of J = d A G / dz at z*, so the gradient 2 J^T r* + 2 lambda z* vanishes at z*
    while the residual stays large; z* lies 0.3 from each row's N(0, I) start."""
    g = torch.Generator().manual_seed(0)
    draw = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    generator = QuadraticGenerator(draw(16, k) / 4, torch.rand(16, generator=g, dtype=torch.float64), draw(16, k) / 4)
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=m).double()
    model = MeasurementModel(operator, Noise("gaussian", 0.1), seed=0)
    z_star = initial_latents(generator, [0, 1, 2], 1, 0).double() + 0.3 * draw(3, k)
    rows = []
    for z in z_star:
        jac = torch.autograd.functional.jacobian(lambda v: model.predict(generator(v[None]))[0], z)
        v = torch.linalg.qr(jac, mode="complete")[0][:, k:] @ draw(m - k)
        residual = -lambda_z * jac @ torch.linalg.solve(jac.T @ jac, z) + v / v.norm()
        rows.append(model.predict(generator(z[None]))[0] - residual)
    return generator, model, torch.stack(rows), z_star


def test_secant_steps_converge_superlinearly_where_the_residual_is_large():
    """z* is a strict minimiser (zero gradient, positive definite Hessian) where Gauss-Newton's neglected term is
    large (its local contraction factor reaches 0.78): plain Gauss-Newton steps approach z* linearly, the BFGS
    updated ones reach it to 1e-8 within 10 steps; both end at the same known z*."""
    lambda_z = 0.1
    generator, model, y, z_star = large_residual_problem(lambda_z)
    contraction = []
    for row, z in enumerate(z_star):
        objective = lambda v: (model.predict(generator(v[None]))[0] - y[row]).pow(2).sum() + lambda_z * v @ v  # noqa: E731
        gradient = torch.autograd.functional.jacobian(objective, z)
        hessian = torch.autograd.functional.hessian(objective, z)
        jac = torch.autograd.functional.jacobian(lambda v: model.predict(generator(v[None]))[0], z)
        gauss_newton = 2 * jac.T @ jac + 2 * lambda_z * torch.eye(3, dtype=z.dtype)
        assert float(gradient.norm()) < 1e-12 and float(torch.linalg.eigvalsh(hessian).min()) > 1
        contraction.append(
            float(torch.linalg.eigvals(torch.linalg.solve(gauss_newton, gauss_newton - hessian)).abs().max())
        )
    assert max(contraction) > 0.7

    def distance(secant, iterations):
        out = solver(lambda_z=lambda_z, secant=secant, iterations=iterations).solve(y, model, [0, 1, 2], generator)
        return float((out.z - z_star).norm(dim=1).max())

    assert distance(True, 10) < 1e-8 < 1e-6 < distance(False, 10)
    assert distance(True, 5) < distance(False, 10)  # half the steps, nearer
    assert distance(False, 60) < 1e-7


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


@pytest.mark.parametrize("secant", [False, True])
def test_results_and_work_do_not_depend_on_the_batch(secant):
    torch.manual_seed(0)
    generator = VAEDecoder(4, SHAPE, [16]).double().eval().requires_grad_(False)
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=8).double()
    model = MeasurementModel(operator, Noise("gaussian", 0.05), seed=0)
    ids = [3, 7, 11, 20]
    y = model.measure(torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64), ids)
    options = dict(
        iterations=8, restarts=3, ambiguity=0.5, start_bank=64, secant=secant, geodesic=0 if secant else 0.75
    )
    together = GaussNewtonSolver(**options).solve(y, model, ids, generator, seed=5)
    for i in range(4):
        alone = GaussNewtonSolver(**options).solve(y[i : i + 1], model, ids[i : i + 1], generator, seed=5)
        torch.testing.assert_close(alone.x_hat, together.x_hat[i : i + 1], rtol=1e-10, atol=1e-10)
        for field in ("generator_evaluations", "jvps", "vjps", "iterations", "converged"):
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


def test_reported_work_of_secant_steps_is_the_work_done():
    """One Jacobian per row (k JVPs and its primal); then per step a trial forward and one VJP per row."""
    torch.manual_seed(0)
    generator = CountingDecoder(4, SHAPE, [16]).eval().requires_grad_(False)
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=8)
    model = MeasurementModel(operator, Noise("gaussian", 0.05), seed=0)
    y = model.measure(torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1)), [0, 1, 2])
    out = GaussNewtonSolver(iterations=6, restarts=2, start_bank=0, geodesic=0, secant=True, tol=0.0).solve(
        y, model, [0, 1, 2], generator
    )
    assert int(out.generator_evaluations.sum()) == generator.rows
    assert int(out.vjps.sum()) == generator.backward_rows > 0
    assert bool((out.jvps == 2 * 4).all())  # one Jacobian of k = 4 columns per row, 2 rows per image
    assert bool((out.generator_evaluations == 2 * 1 + out.vjps + 1).all())  # primals, a trial per VJP, final image


def test_bad_options_are_refused_in_one_line():
    with pytest.raises(CsgmError, match="solver.start_bank=1 must hold at least the 2 restarts"):
        GaussNewtonSolver(restarts=2, start_bank=1)
    with pytest.raises(CsgmError, match="solver.geodesic=0.75 corrects Gauss-Newton steps.*set solver.geodesic=0"):
        GaussNewtonSolver(secant=True)
    with pytest.raises(CsgmError, match="solver.secant='yes' must be true or false"):
        GaussNewtonSolver(secant="yes", geodesic=0)
    with pytest.raises(CsgmError, match=r"solver.accept=1.5 must be in \[0, 1\]"):
        build_solver({"name": "gauss_newton", "accept": 1.5})
