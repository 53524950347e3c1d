"""The contract every conf/solver config must pass: shapes, range, finiteness, determinism and batch
independence on a small problem. A new solver YAML is tested here without new test code."""

from __future__ import annotations

import pytest
import torch

from csgm.cli import plain
from csgm.generators import build_generator
from csgm.operators import build_operator
from csgm.solvers import build_solver
from tests.helpers import compose_config, conf_options

SHAPE = (1, 16, 16)


def small_solver(option: str):
    cfg = plain(compose_config("recover", [f"solver={option}"]))["solver"]
    solver = build_solver(cfg)
    if solver.tunable and getattr(solver, solver.tunable) == "auto":
        cfg[solver.tunable] = cfg["lambda_grid"][len(cfg["lambda_grid"]) // 2]
    for key, value in (("iterations", 25), ("restarts", 2), ("max_iterations", 200), ("polish_iterations", 50)):
        if key in cfg:
            cfg[key] = value
    return build_solver(cfg)


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    generator = build_generator("vae", {"latent_dim": 4, "hidden_dims": [32]}, SHAPE).eval().requires_grad_(False)
    operator = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=60)
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    y = operator(x) + 0.05 * torch.randn(3, 60, generator=torch.Generator().manual_seed(2))
    return generator, operator, y


@pytest.mark.parametrize("option", conf_options("solver"))
def test_solver_contract(option, setting):
    generator, operator, y = setting
    solver = small_solver(option)
    ids = [4, 8, 15]
    out = solver.solve(y, operator, ids, generator, seed=0)
    assert out.x_hat.shape == (3, *SHAPE)
    assert bool(torch.isfinite(out.x_hat).all()) and float(out.x_hat.min()) >= 0 and float(out.x_hat.max()) <= 1
    assert out.measurement_loss.shape == (3,) and bool(torch.isfinite(out.measurement_loss).all())
    torch.testing.assert_close(out.measurement_loss, (operator(out.x_hat) - y).pow(2).sum(1), rtol=1e-4, atol=1e-4)
    assert out.iterations.shape == (3,) and out.dropped_restarts.shape == (3,)
    again = small_solver(option).solve(y, operator, ids, generator, seed=0)
    torch.testing.assert_close(again.x_hat, out.x_hat)  # deterministic
    alone = small_solver(option).solve(y[1:2], operator, ids[1:2], generator, seed=0)
    torch.testing.assert_close(alone.x_hat, out.x_hat[1:2], rtol=1e-5, atol=1e-5)  # batch independent
