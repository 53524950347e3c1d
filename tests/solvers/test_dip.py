"""CS-DIP: one seeded untrained network per image, fitted in one batch."""

from __future__ import annotations

import torch

from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.solvers import build_solver
from csgm.solvers.dip import total_variation

SHAPE = (1, 12, 12)


def test_fitting_explains_the_measurements_and_images_stay_independent():
    grid = torch.linspace(-1, 1, SHAPE[1])
    centres = torch.tensor([[-0.3, 0.2], [0.4, -0.1], [0.0, 0.5]])
    x = torch.exp(
        -(
            (grid[None, :, None] - centres[:, None, None, :1]) ** 2
            + (grid[None, None, :] - centres[:, None, None, 1:2]) ** 2
        )
        / 0.2
    ).view(3, *SHAPE)  # smooth blobs, the images a deep decoder fits quickly
    model = MeasurementModel(build_operator({"name": "gaussian"}, SHAPE, seed=0, m=100).double(), Noise("none"))
    y = model.measure(x.double(), [5, 6, 7])  # float64: float32 rounding of the batched convs grows over 200 Adam steps
    start = build_solver({"name": "dip", "iterations": 1}).solve(y, model, [5, 6, 7])
    fitted = build_solver({"name": "dip", "iterations": 200, "lr": 0.01}).solve(y, model, [5, 6, 7])
    assert bool((fitted.measurement_loss < 0.1 * start.measurement_loss).all())
    alone = build_solver({"name": "dip", "iterations": 200, "lr": 0.01}).solve(y[2:], model, [7])
    torch.testing.assert_close(alone.x_hat, fitted.x_hat[2:], atol=1e-8, rtol=0)  # seeded per image id


def test_total_variation():
    x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert total_variation(x).tolist() == [2.0]
