"""FISTA Lasso: matches scikit-learn, converges in every basis (objective, KKT), batch independence."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import Lasso

from csgm.errors import CsgmError
from csgm.operators import build_operator
from csgm.solvers import build_solver
from csgm.solvers.sparsity_bases import build_basis
from csgm.solvers.lasso import LassoSolver, fista


def problem(m=40, shape=(1, 8, 8), seed=0):
    A = build_operator({"name": "gaussian"}, shape, seed=seed, m=m).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(3, A.n, dtype=torch.float64)
    x[:, torch.randperm(A.n, generator=g)[:6]] = torch.rand(3, 6, generator=g, dtype=torch.float64)
    x = x.view(3, *shape)
    y = A(x) + 0.05 * torch.randn(3, m, generator=g, dtype=torch.float64)
    return A, x, y


def objective(A, basis, c, y, lam):
    return 0.5 * (A(basis.synthesis(c)) - y).pow(2).sum(1) + lam * c.abs().sum(1)


@pytest.mark.parametrize("lam", [0.05, 0.5, 2.0])
def test_pixel_lasso_matches_scikit_learn(lam):
    A, _, y = problem()
    basis = build_basis("pixel", A.image_shape)
    c, _, converged = fista(
        y, A, basis, torch.full((3,), lam, dtype=torch.float64), 20000, 1e-12, A.norm_squared(tol=1e-12) * 1.001
    )
    assert bool(converged.all())
    matrix = A.to_dense().numpy()
    for row in range(3):
        # scikit-learn minimises (1 / 2m) ||y - X w||^2 + alpha ||w||_1: alpha = lambda / m is the same problem.
        reference = Lasso(alpha=lam / A.m, fit_intercept=False, tol=1e-12, max_iter=200000).fit(matrix, y[row].numpy())
        ref_c = torch.from_numpy(reference.coef_).view(1, -1)
        ours, theirs = (
            objective(A, basis, c[row : row + 1], y[row : row + 1], lam),
            objective(A, basis, ref_c, y[row : row + 1], lam),
        )
        assert float((ours - theirs) / theirs) < 1e-4


@pytest.mark.parametrize("name,options", [("pixel", {}), ("dct", {}), ("wavelet", {"wavelet": "db2", "levels": 2})])
def test_fista_converges_in_every_basis(name, options):
    A, _, y = problem(m=120, shape=(1, 16, 16))
    basis = build_basis(name, A.image_shape, **options)
    lam = torch.full((3,), 0.3, dtype=torch.float64)
    lipschitz = A.norm_squared(tol=1e-12) * 1.001
    values = []
    for iterations in (25, 50, 100, 200, 400, 800, 3000):  # deterministic: each run extends the previous one
        c, _, _ = fista(y, A, basis, lam, iterations, 1e-14, lipschitz)
        values.append(objective(A, basis, c, y, 0.3))
    for earlier, later in zip(values, values[1:]):
        assert bool((later <= earlier * (1 + 1e-6)).all())
    gradient = basis.analysis(A.adjoint(A(basis.synthesis(c)) - y))
    kkt = torch.where(c != 0, (gradient + 0.3 * torch.sign(c)).abs(), (gradient.abs() - 0.3).clamp_min(0))
    assert float(kkt.max()) < 1e-3


def test_results_do_not_depend_on_the_batch():
    A, _, y = problem(m=30)
    solver = LassoSolver(lambda_l1=0.2, max_iterations=300)
    together = solver.solve(y, A, [0, 1, 2])
    apart = torch.cat([solver.solve(y[i : i + 1], A, [i]).x_hat for i in range(3)])
    torch.testing.assert_close(together.x_hat, apart)


def test_output_is_clipped_and_non_convergence_is_reported():
    A, _, y = problem(m=30)
    out = LassoSolver(lambda_l1=0.01, max_iterations=3).solve(y * 50, A, [0, 1, 2])
    assert float(out.x_hat.min()) >= 0 and float(out.x_hat.max()) <= 1
    assert not bool(out.converged.any()) and out.iterations.tolist() == [3, 3, 3]


@pytest.mark.parametrize(
    "options,match",
    [
        ({"lambda_l1": 0.0}, r"lambda_l1=0.0 must be a number > 0, or auto"),
        ({"lambda_l1": -1}, r"lambda_l1=-1 must be a number > 0"),
        ({"lambda_l1": "big"}, r"lambda_l1='big' must be a number > 0"),
        ({"max_iterations": 0}, r"max_iterations=0 must be >= 1"),
    ],
)
def test_bad_lasso_options(options, match):
    with pytest.raises(CsgmError, match=match):
        build_solver({"name": "lasso", **options})


def test_auto_lambda_needs_tuning_first():
    A, _, y = problem()
    with pytest.raises(CsgmError, match="lambda_l1=auto must be resolved on the validation split first"):
        build_solver({"name": "lasso"}).solve(y, A, [0, 1, 2])
