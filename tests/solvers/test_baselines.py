"""The classical baselines of the nonlinear operators recover what their theory says they recover."""

from __future__ import annotations

import torch

from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.solvers import build_solver
from csgm.solvers.biht import hard_threshold
from csgm.solvers.sparsity_bases import build_basis

SHAPE = (1, 8, 8)


def test_wirtinger_flow_recovers_x_exactly_from_4n_magnitudes():
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    A = build_operator({"name": "phase_retrieval"}, SHAPE, seed=0, m=4 * 64).double()
    model = MeasurementModel(A, Noise("none"))
    y = model.measure(x, range(3))
    out = build_solver({"name": "wirtinger_flow", "iterations": 1500}).solve(y, model, [0, 1, 2])
    assert float((out.x_hat - x).abs().max()) < 1e-6  # the global sign is resolved too (images are >= 0)


def test_wirtinger_flow_never_diverges_below_its_sample_complexity():
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    A = build_operator({"name": "phase_retrieval"}, SHAPE, seed=0, m=40).double()
    model = MeasurementModel(A, Noise("none"))
    out = build_solver({"name": "wirtinger_flow", "iterations": 300, "mu_max": 5.0}).solve(
        model.measure(x, [0, 1]), model, [0, 1]
    )
    assert bool(torch.isfinite(out.x_hat).all()) and bool(torch.isfinite(out.measurement_loss).all())


def test_biht_recovers_the_direction_of_a_sparse_image():
    basis = build_basis("dct", SHAPE).double()
    c = torch.zeros(1, 64, dtype=torch.float64)
    c[0, [0, 1, 8, 9]] = torch.tensor([4.0, 0.8, -0.6, 0.5], dtype=torch.float64)  # DC term keeps x >= 0
    x = basis.synthesis(c)
    assert float(x.min()) >= 0
    A = build_operator({"name": "one_bit"}, SHAPE, seed=0, m=512).double()
    model = MeasurementModel(A, Noise("none"))
    out = build_solver({"name": "biht", "sparsity": 4, "iterations": 300}).solve(model.measure(x, [0]), model, [0])
    unit = lambda v: v.flatten(1) / v.flatten(1).norm(dim=1, keepdim=True)  # noqa: E731
    assert float((unit(out.x_hat) - unit(x)).norm()) < 0.1


def test_biht_candidates_in_one_batch_equal_one_by_one():
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(2))
    A = build_operator({"name": "one_bit"}, SHAPE, seed=0, m=100)
    model = MeasurementModel(A, Noise("none"))
    y = model.measure(x, [0, 1])
    solver = build_solver({"name": "biht", "sparsity": "auto", "sparsity_grid": [3, 10], "iterations": 50})
    batched = solver.solve_candidates(solver.candidates(), y, model, [0, 1])
    for candidate, x_hat in zip(solver.candidates(), batched):
        torch.testing.assert_close(x_hat, solver.with_options(**candidate).solve(y, model, [0, 1]).x_hat)


def test_hard_threshold_keeps_each_rows_own_count():
    c = torch.tensor([[3.0, -5.0, 1.0, 0.5], [1.0, 2.0, -3.0, 4.0]])
    kept = hard_threshold(c, torch.tensor([1, 3]))
    assert kept.tolist() == [[0.0, -5.0, 0.0, 0.0], [0.0, 2.0, -3.0, 4.0]]
