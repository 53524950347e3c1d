"""ILO: the l1-ball projection, and the bounded layer search between CSGM (radius 0) and a free layer."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import Generator, build_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.solvers import build_solver, solver_class
from csgm.solvers.ilo import project_l1_ball

SHAPE = (1, 8, 8)


def test_project_l1_ball():
    v = torch.tensor([[3.0, 1.0], [0.5, -0.5], [-4.0, 2.0]])
    projected = project_l1_ball(v, torch.tensor([2.0, 2.0, 3.0]))
    torch.testing.assert_close(projected, torch.tensor([[2.0, 0.0], [0.5, -0.5], [-2.5, 0.5]]))
    random = torch.randn(50, 30, generator=torch.Generator().manual_seed(0))
    radius = torch.rand(50, generator=torch.Generator().manual_seed(1)) * 10
    w = project_l1_ball(random, radius)
    outside = random.abs().sum(1) > radius
    torch.testing.assert_close(w.abs().sum(1)[outside], radius[outside], rtol=1e-5, atol=1e-5)
    # the projection is the closest point of the ball: no random point of the ball is closer
    for _ in range(5):
        other = project_l1_ball(random + 0.3 * torch.randn_like(random), radius)
        assert bool(((random - w).norm(dim=1) <= (random - other).norm(dim=1) + 1e-5).all())


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    generator = build_generator("vae", {"latent_dim": 3, "hidden_dims": [64, 64]}, SHAPE).eval().requires_grad_(False)
    model = MeasurementModel(build_operator({"name": "gaussian"}, SHAPE, seed=0, m=48), Noise("none"))
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(3))  # far from the tiny G's range
    return generator, model, model.measure(x, [0, 1])


def test_radius_moves_the_estimate_from_csgm_towards_the_data(problem):
    generator, model, y = problem
    common = {"name": "ilo", "restarts": 2, "iterations": 50, "layer_iterations": 300, "layer_lr": 0.05}
    csgm = build_solver({"name": "csgm", "restarts": 2, "iterations": 50}).solve(y, model, [0, 1], generator)
    tiny = build_solver({**common, "radius": 1e-6}).solve(y, model, [0, 1], generator)
    free = build_solver({**common, "radius": 1e4}).solve(y, model, [0, 1], generator)
    torch.testing.assert_close(tiny.x_hat, csgm.x_hat, atol=1e-4, rtol=0)
    assert bool((free.measurement_loss < 0.5 * csgm.measurement_loss).all())
    batched = build_solver({**common, "radius": "auto"}).solve_candidates(
        [{"radius": 1e-6}, {"radius": 1e4}], y, model, [0, 1], generator
    )
    torch.testing.assert_close(batched[1], free.x_hat, atol=1e-5, rtol=0)


def test_a_generator_without_layers_is_refused_in_one_line(problem):
    _, model, y = problem

    class Opaque(Generator):
        def decode(self, z):
            return torch.sigmoid(z.sum(1, keepdim=True)).expand(-1, 64).reshape(-1, *SHAPE)

    with pytest.raises(CsgmError, match="Opaque exposes no intermediate layers"):
        build_solver({"name": "ilo", "radius": 1.0}).solve(y, model, [0, 1], Opaque(3, SHAPE))


def test_a_second_order_first_stage_starts_the_layer_search_from_its_estimate(problem):
    """first_stage: the layer search starts from exactly csgm_qn's kept latents and data term, never ends above it,
    and a tiny radius keeps csgm_qn's estimate; the unused Adam options and foreign stages are refused."""
    generator, model, y = problem
    stage = {"name": "gauss_newton", "iterations": 20, "restarts": 2, "secant": True, "geodesic": 0.0}
    second_order = build_solver(stage).solve(y, model, [0, 1], generator)
    common = {"name": "ilo", "first_stage": stage, "layer_iterations": 300, "layer_lr": 0.05}
    free = build_solver({**common, "radius": 1e4}).solve(y, model, [0, 1], generator)
    tiny = build_solver({**common, "radius": 1e-6}).solve(y, model, [0, 1], generator)
    torch.testing.assert_close(free.start_loss, second_order.measurement_loss, rtol=0, atol=0)
    torch.testing.assert_close(free.z, second_order.z, rtol=0, atol=0)
    assert bool((free.measurement_loss < 0.5 * second_order.measurement_loss).all())
    torch.testing.assert_close(tiny.x_hat, second_order.x_hat, atol=1e-4, rtol=0)
    assert torch.equal(free.vjps, second_order.vjps + 300)
    with pytest.raises(CsgmError, match=r"solver.lr=0.1 sets the Adam first stage, which solver.first_stage replaces"):
        build_solver({**common, "radius": 1.0, "lr": 0.1})
    with pytest.raises(CsgmError, match=r"solver.first_stage.name='csgm' must be 'gauss_newton'"):
        build_solver({**common, "radius": 1.0, "first_stage": {"name": "csgm"}})
    with pytest.raises(CsgmError, match=r"unknown key solver.first_stage.lr \(value 0.1\)"):
        build_solver({**common, "radius": 1.0, "first_stage": {**stage, "lr": 0.1}})


def test_a_smoke_test_shrinks_the_second_order_stage_not_the_unused_adam_options():
    options = {"name": "ilo", "radius": 1.0, "first_stage": {"name": "gauss_newton", "iterations": 40, "restarts": 2}}
    shrunk = solver_class(options).shrunk_options(options, 0.1)
    assert shrunk["first_stage"] == {"name": "gauss_newton", "iterations": 4, "restarts": 1}
    assert shrunk["layer_iterations"] == 30 and "iterations" not in shrunk and "restarts" not in shrunk
    build_solver(shrunk)  # the shrunk options are accepted
