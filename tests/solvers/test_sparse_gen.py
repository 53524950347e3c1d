"""Sparse-Gen known answers: large lambda_nu is CSGM; a generator that explains nothing gives the Lasso."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.generators.checkpoint import load_generator
from csgm.operators import build_operator
from csgm.solvers import build_solver
from csgm.solvers.csgm import CSGMSolver
from csgm.solvers.lasso import LassoSolver
from csgm.solvers.sparse_gen import SparseGenSolver


class ZeroGenerator(Generator):
    """G(z) = 0 for every z (plus 0 * z so that z has a gradient)."""

    def __init__(self, shape):
        super().__init__(3, shape)

    def decode(self, z):
        return (0.0 * z.sum(1)).view(-1, 1, 1, 1).expand(-1, *self.image_shape)


def test_huge_lambda_nu_is_csgm(vae_checkpoint):
    G, _ = load_generator(vae_checkpoint)
    A = build_operator({"name": "gaussian"}, G.image_shape, seed=0, m=50)
    x = torch.rand(2, *G.image_shape, generator=torch.Generator().manual_seed(0))
    y = A(x)
    options = {"lr": 0.01, "iterations": 40, "restarts": 2}
    csgm = CSGMSolver(**options).solve(y, A, [0, 1], G, seed=3)
    sparse = SparseGenSolver(lambda_nu=1e9, **options).solve(y, A, [0, 1], G, seed=3)
    torch.testing.assert_close(sparse.x_hat, csgm.x_hat)


def test_with_an_empty_generator_it_is_the_lasso():
    shape = (1, 8, 8)
    A = build_operator({"name": "gaussian"}, shape, seed=1, m=40).double()
    x = torch.zeros(2, 64, dtype=torch.float64)
    x[:, [3, 17, 40]] = torch.tensor([0.9, 0.5, 0.7], dtype=torch.float64)
    x = x.view(2, *shape)
    y = A(x)
    sparse = SparseGenSolver(lambda_nu=1.0, iterations=5, restarts=1, polish_iterations=5000).solve(
        y, A, [0, 1], ZeroGenerator(shape)
    )
    lasso = LassoSolver(lambda_l1=0.5, max_iterations=5000, tol=1e-9).solve(
        y, A, [0, 1]
    )  # ||r||^2 + 1.0|c| ~ 0.5||r||^2 + 0.5|c|
    torch.testing.assert_close(sparse.x_hat, lasso.x_hat, rtol=1e-4, atol=1e-4)


def test_it_leaves_the_range_of_g(vae_checkpoint):
    """With enough measurements the sparse deviation fixes part of what G cannot draw."""
    G, _ = load_generator(vae_checkpoint)
    A = build_operator({"name": "gaussian"}, G.image_shape, seed=0, m=500)
    x = torch.zeros(2, *G.image_shape)
    x[:, :, 5:9, 3:25] = 1.0  # a thick bar: not a digit
    y = A(x)
    options = {"lr": 0.01, "iterations": 100, "restarts": 2}
    csgm_error = (CSGMSolver(**options).solve(y, A, [0, 1], G).x_hat - x).pow(2).mean()
    sparse_error = (SparseGenSolver(lambda_nu=1.0, **options).solve(y, A, [0, 1], G).x_hat - x).pow(2).mean()
    assert float(sparse_error) < 0.5 * float(csgm_error)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"lambda_nu": -2.0}, r"lambda_nu=-2.0 must be a number > 0"),
        ({"lambda_nu": 1.0, "l1_weight": 1.0}, "set solver.l1_weight=0"),
        ({"lambda_nu": 1.0, "use_generator": "off"}, r"solver.use_generator='off' must be true or false"),
    ],
)
def test_bad_sparse_gen_options(options, match):
    with pytest.raises(CsgmError, match=match):
        build_solver({"name": "sparse_gen", **options})


def test_without_the_generator_it_is_the_lasso_and_validation_may_choose_it():
    A, x = (
        build_operator({"name": "gaussian"}, (1, 8, 8), seed=1, m=40).double(),
        torch.rand(2, 1, 8, 8, dtype=torch.float64),
    )
    y = A(x)
    sparse = SparseGenSolver(lambda_nu=1.0, use_generator=False, polish_iterations=5000).solve(
        y, A, [0, 1], ZeroGenerator((1, 8, 8))
    )
    lasso = LassoSolver(lambda_l1=0.5, max_iterations=5000, tol=1e-6).solve(y, A, [0, 1])  # the polish's tolerance
    torch.testing.assert_close(sparse.x_hat, lasso.x_hat, rtol=1e-4, atol=1e-4)
    assert sparse.generator_evaluations.tolist() == [0, 0]
    solver = build_solver({"name": "sparse_gen", "lambda_grid": [1.0, 10.0], "tune_generator": True})
    assert solver.candidates() == [
        {"lambda_nu": 1.0, "use_generator": True},
        {"lambda_nu": 10.0, "use_generator": True},
        {"lambda_nu": 1.0, "use_generator": False},
        {"lambda_nu": 10.0, "use_generator": False},
    ]


def test_batched_candidate_search_equals_one_run_per_candidate(vae_checkpoint):
    G, _ = load_generator(vae_checkpoint)
    A = build_operator({"name": "gaussian"}, G.image_shape, seed=0, m=200)
    x = torch.rand(3, *G.image_shape, generator=torch.Generator().manual_seed(0)).pow(3)
    y = A(x)
    solver = SparseGenSolver(
        lambda_grid=[0.3, 3.0, 100.0], tune_generator=True, lr=0.01, iterations=30, restarts=2, polish_iterations=50
    )
    candidates = solver.candidates()
    assert len(candidates) == 6  # three lambda_nu values, with and without G
    batched = solver.solve_candidates(candidates, y, A, [4, 5, 6], G, seed=1)
    alone = [solver.with_options(**c).solve(y, A, [4, 5, 6], G, seed=1).x_hat for c in candidates]
    for one, other in zip(batched, alone):
        torch.testing.assert_close(one, other, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batched[0], batched[2], atol=1e-3)  # the candidates differ: the penalty reached each row


def test_a_second_order_first_stage_serves_every_candidate_as_if_it_ran_alone(vae_checkpoint):
    """sparse_gen_qn's candidate search runs the latent search once for every lambda_nu: each candidate's estimate
    and work equal its own run's (in float64: FISTA stopped before convergence amplifies rounding); the Adam
    options it replaces are refused."""
    G, _ = load_generator(vae_checkpoint)
    G = G.double()
    A = build_operator({"name": "gaussian"}, G.image_shape, seed=0, m=200).double()
    x = torch.rand(2, *G.image_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stage = {"name": "gauss_newton", "iterations": 10, "restarts": 2, "secant": True, "geodesic": 0.0}
    solver = build_solver({"name": "sparse_gen", "lambda_nu": "auto", "first_stage": stage, "rounds": 1})
    candidates = [{"lambda_nu": 1.0, "use_generator": True}, {"lambda_nu": 100.0, "use_generator": True}]
    batched = solver.solve_candidates(candidates, A(x), A, [0, 1], G, seed=3)
    for candidate, estimate in zip(candidates, batched):
        alone = solver.with_options(**candidate).solve(A(x), A, [0, 1], G, seed=3)
        torch.testing.assert_close(estimate, alone.x_hat, atol=1e-5, rtol=0)
        assert bool((alone.jvps > 0).all()) and bool((alone.vjps > 0).all())
    with pytest.raises(CsgmError, match=r"solver.lr=0.1 sets the Adam latent search, which solver.first_stage"):
        build_solver({"name": "sparse_gen", "first_stage": stage, "lr": 0.1})
