"""PGD's second-order projection (``projection``, conf/solver/pgd_qn.yaml): it projects, counts its work and
refuses the Adam options it replaces."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import build_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.solvers import build_solver, solver_class

SHAPE = (1, 8, 8)
STAGE = {"name": "gauss_newton", "iterations": 20, "restarts": 1, "lambda_z": 0.0, "secant": True, "geodesic": 0.0}


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return build_generator("vae", {"latent_dim": 3, "hidden_dims": [64, 64]}, SHAPE).eval().requires_grad_(False)


def test_the_second_order_projection_finds_the_latent_of_a_point_of_the_range(generator):
    """v = G(z*): from a start near z* the projection returns G(z) = v; one Jacobian (k JVPs) per projection."""
    z_true = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    v = generator(z_true)
    start = z_true + 0.2 * torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    solver = build_solver({"name": "pgd", "step": 1.0, "projection": {**STAGE, "start_bank": 0}})
    z, work, hessian = solver.project(v, start.clone(), generator, [0, 1, 2, 3], 0)
    torch.testing.assert_close(generator(z), v, atol=1e-4, rtol=0)
    assert work.shape == (3, 4) and torch.equal(work[1], torch.full((4,), 3))
    assert bool((work[0] >= 2).all()) and bool((work[2] >= 1).all())
    # from the carried model Hessian: the same answer without a Jacobian (one VJP for the first gradient)
    z_carried, carried_work, _ = solver.project(v, start.clone(), generator, [0, 1, 2, 3], 0, hessian)
    torch.testing.assert_close(generator(z_carried), v, atol=1e-4, rtol=0)
    assert torch.equal(carried_work[1], torch.zeros(4, dtype=torch.long)) and bool((carried_work[2] >= 2).all())


def test_pgd_with_a_second_order_projection_recovers_a_point_of_the_range_and_counts_its_work(generator):
    model = MeasurementModel(build_operator({"name": "gaussian"}, SHAPE, seed=0, m=48), Noise("none"))
    x = generator(torch.randn(2, 3, generator=torch.Generator().manual_seed(3)))
    y = model.measure(x, [0, 1])
    out = build_solver({"name": "pgd", "step": 1.0, "iterations": 20, "projection": STAGE}).solve(
        y, model, [0, 1], generator
    )
    torch.testing.assert_close(out.x_hat, x, atol=2e-3, rtol=0)
    assert bool((out.measurement_loss <= out.start_loss).all())
    assert torch.equal(out.jvps, torch.full((2,), 20 * 3))  # one Jacobian per projection
    assert bool((out.generator_evaluations > 20 * 2).all()) and bool((out.vjps >= 20).all())
    carried = build_solver({"name": "pgd", "step": 1.0, "iterations": 20, "projection": STAGE, "jacobian_every": 5})
    out = carried.solve(y, model, [0, 1], generator)
    torch.testing.assert_close(out.x_hat, x, atol=2e-3, rtol=0)
    assert torch.equal(out.jvps, torch.full((2,), 5 * 3))  # the bank's start, the first warm one, 5, 10, 15


def test_the_unused_adam_options_and_foreign_stages_are_refused():
    common = {"name": "pgd", "step": 1.0, "projection": STAGE}
    with pytest.raises(CsgmError, match=r"solver.inner_lr=0.1 sets the Adam projection, which solver.projection "):
        build_solver({**common, "inner_lr": 0.1})
    with pytest.raises(CsgmError, match=r"solver.projection.name='csgm' must be 'gauss_newton'"):
        build_solver({**common, "projection": {"name": "csgm"}})
    with pytest.raises(CsgmError, match=r"solver.projection.iterations=0 must be > 0"):
        build_solver({**common, "projection": {**STAGE, "iterations": 0}})
    with pytest.raises(CsgmError, match=r"solver.jacobian_every=0 sets the second-order projection's Jacobians"):
        build_solver({"name": "pgd", "step": 1.0, "jacobian_every": 0})


def test_a_smoke_test_shrinks_the_projection_not_the_unused_adam_options():
    options = {"name": "pgd", "iterations": 50, "step": 1.0, "projection": {"name": "gauss_newton", "iterations": 10}}
    shrunk = solver_class(options).shrunk_options(options, 0.1)
    assert shrunk["projection"] == {"name": "gauss_newton", "iterations": 1, "restarts": 1}
    assert shrunk["iterations"] == 5 and "inner_iterations" not in shrunk
    build_solver(shrunk)
    plain = solver_class({"name": "pgd"}).shrunk_options({"name": "pgd", "step": 1.0}, 0.1)
    assert plain["iterations"] == 5 and plain["inner_iterations"] == 5
