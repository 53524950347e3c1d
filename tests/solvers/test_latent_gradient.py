"""The compiled latent gradient (solver option ``compile``) gives the eager results, with rows leaving
the batch, an L1 term, a latent penalty and Sparse-Gen's deviation; a failed compile names the fix."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import build_generator
from csgm.operators import build_operator
from csgm.solvers import latent_gradient as gradient_module
from csgm.solvers.csgm import CSGMSolver
from csgm.solvers.sparse_gen import SparseGenSolver
from tests.helpers import requires_compiler

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    generator = build_generator("vae", {"latent_dim": 4, "hidden_dims": [16]}, SHAPE).requires_grad_(False)
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    return generator, x


@requires_compiler
@pytest.mark.parametrize("m", [20, 30])  # a second operator shape recompiles instead of failing
def test_compiled_csgm_matches_eager(problem, m):
    generator, x = problem
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=m)
    y = operator(x)
    options = dict(lr=0.05, iterations=20, restarts=4, lambda_z=0.1, l1_weight=0.5, halving_every=5)
    eager = CSGMSolver(**options).solve(y, operator, [0, 1, 2], generator)
    with torch.no_grad():  # as inside Lightning's predict loop
        compiled = CSGMSolver(**options, compile=True).solve(y, operator, [0, 1, 2], generator)
    torch.testing.assert_close(compiled.z, eager.z, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled.x_hat, eager.x_hat, rtol=1e-4, atol=1e-5)
    assert torch.equal(compiled.generator_evaluations, eager.generator_evaluations)


@requires_compiler
def test_compiled_sparse_gen_matches_eager(problem):
    generator, x = problem
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=30)
    y = operator(x)
    options = dict(lambda_nu=1.0, lr=0.05, iterations=15, restarts=2, polish_iterations=10)
    eager = SparseGenSolver(**options).solve(y, operator, [0, 1, 2], generator)
    compiled = SparseGenSolver(**options, compile=True).solve(y, operator, [0, 1, 2], generator)
    torch.testing.assert_close(compiled.x_hat, eager.x_hat, rtol=1e-4, atol=1e-5)


def test_a_failed_compile_names_the_option(problem, monkeypatch):
    failure = torch._dynamo.exc.BackendCompilerFailed.__new__(
        torch._dynamo.exc.BackendCompilerFailed
    )  # its __init__ varies
    Exception.__init__(failure, "backend='inductor' raised: InvalidCxxCompiler: no working C++ compiler found")

    def broken(*args):
        raise failure

    monkeypatch.setattr(gradient_module, "_compiled", lambda: broken)
    generator, x = problem
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=20)
    with pytest.raises(CsgmError, match=r"solver.compile=true could not compile.*set solver.compile=false"):
        CSGMSolver(iterations=2, restarts=1, compile=True).solve(operator(x), operator, [0, 1, 2], generator)
