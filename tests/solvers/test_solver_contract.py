"""The contract every conf/solver config must pass: shapes, range, finiteness, determinism and batch
independence on a small problem. A new solver YAML is tested here without new test code."""

from __future__ import annotations

import copy

import pytest
import torch

from csgm.cli import plain
from csgm.errors import CsgmError
from csgm.generators import build_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator, operator_uses_m
from csgm.precision import solver_arithmetic
from csgm.solvers import build_solver
from tests.helpers import compose_config, conf_options

SHAPE = (1, 16, 16)
# the problems a solver may be given, in order of preference: it is tested on the first one it accepts
PROBLEMS = [
    ({"name": "gaussian"}, Noise("gaussian", 0.05)),
    ({"name": "phase_retrieval"}, Noise("gaussian", 0.05)),
    ({"name": "one_bit"}, Noise("none")),
]


def small_solver(option: str):
    cfg = plain(compose_config("recover", [f"solver={option}"]))["solver"]
    solver = build_solver(cfg)
    if solver.needs_tuning:
        grid = cfg[solver.grid_option]
        cfg[solver.tunable] = grid[len(grid) // 2]
    for key, value in (
        ("iterations", 25),
        ("restarts", 2),
        ("max_iterations", 200),
        ("polish_iterations", 50),
        ("steps", 40),
        ("burn_in", 20),
        ("chains", 4),
        ("warmup", 10),
        ("draws", 20),
        ("mode_steps", 3),
        ("mode_starts", 4),
        ("ddim_steps", 2),
    ):
        if key in cfg:
            cfg[key] = value
    if solver.needs_diffusion and "levels" in cfg:  # annealing levels (lasso_wavelet's levels are wavelet levels)
        cfg["levels"] = 5
    return build_solver(cfg)


@pytest.fixture(scope="module")
def generators():
    """A tiny VAE, and a tiny diffusion prior for the solvers that need one (``Solver.needs_diffusion``)."""
    torch.manual_seed(0)
    vae = build_generator("vae", {"latent_dim": 4, "hidden_dims": [32]}, SHAPE)
    diffusion = build_generator(
        "diffusion", {"channels": [8, 8], "norm_groups": 4, "timesteps": 100, "sample_steps": 3}, SHAPE
    )
    return {False: vae.eval().requires_grad_(False), True: diffusion.eval().requires_grad_(False)}


def problem_for(solver, dtype: torch.dtype = torch.float32):
    """(measurement model, y, ids) of the first problem the solver accepts (m = 60, three images), in ``dtype``."""
    for operator_cfg, noise in PROBLEMS:
        operator = build_operator(operator_cfg, SHAPE, seed=0, m=60)
        try:
            solver.check_operator(operator)
        except CsgmError:
            continue
        model = MeasurementModel(operator.to(dtype), noise, seed=0)
        x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1)).to(dtype)
        ids = [4, 8, 15]
        return model, model.measure(x, ids), ids
    pytest.fail(f"solver {solver.name!r} accepts none of the contract's operators")


@pytest.mark.parametrize("option", conf_options("solver"))
def test_solver_contract(option, generators):
    solver = small_solver(option)
    generator = generators[solver.needs_diffusion]
    model, y, ids = problem_for(solver)
    out = solver.solve(y, model, ids, generator, seed=0)
    assert out.x_hat.shape == (3, *SHAPE)
    assert bool(torch.isfinite(out.x_hat).all()) and float(out.x_hat.min()) >= 0 and float(out.x_hat.max()) <= 1
    assert out.measurement_loss.shape == (3,) and bool(torch.isfinite(out.measurement_loss).all())
    torch.testing.assert_close(out.measurement_loss, model.loss(out.x_hat, y), rtol=1e-4, atol=1e-4)
    for field in ("iterations", "dropped_restarts", "converged", "all_restarts_diverged", "generator_evaluations"):
        assert getattr(out, field).shape == (3,), field
    again = small_solver(option).solve(y, model, ids, generator, seed=0)
    torch.testing.assert_close(again.x_hat, out.x_hat)  # deterministic
    # batch independent: in float64, where rounding cannot pass for a dependence on the other rows
    # (a float32 solve that stops on a tolerance may stop one step apart when a batch rounds differently)
    model64, y64, _ = problem_for(solver, torch.float64)
    generator64 = copy.deepcopy(generator).double()
    both = small_solver(option).solve(y64, model64, ids, generator64, seed=0)
    alone = small_solver(option).solve(y64[1:2], model64, ids[1:2], generator64, seed=0)
    assert both.x_hat.dtype == alone.x_hat.dtype == torch.float64
    torch.testing.assert_close(alone.x_hat, both.x_hat[1:2], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("option", conf_options("solver"))
def test_every_operator_is_accepted_or_refused_in_one_line(option):
    """Each (solver, operator) pair of the configs: accepted, or a CsgmError naming both and a solver to use."""
    solver = small_solver(option)
    for operator_option in conf_options("operator"):
        cfg = plain(compose_config("recover", [f"operator={operator_option}"]))["operator"]
        operator = build_operator(
            {**cfg, "hole_size": 4} if cfg.get("mode") == "hole" else cfg,
            SHAPE,
            seed=0,
            m=0.25 if operator_uses_m(cfg) else None,
        )
        try:
            solver.check_operator(operator)
        except CsgmError as error:
            assert operator.name in str(error) and "solver=" in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("option", conf_options("solver"))
def test_every_solver_runs_in_bfloat16_autocast(option, generators):
    """trainer.precision=bf16-mixed runs the solver under autocast (csgm.precision): no dtype clash, finite estimates."""
    solver = small_solver(option)
    generator = generators[solver.needs_diffusion]
    model, y, ids = problem_for(solver)
    with solver_arithmetic("bf16-mixed"):
        out = solver.solve(y, model, ids, generator, seed=0).floating_as(y.dtype)
    assert out.x_hat.dtype == torch.float32 and bool(torch.isfinite(out.x_hat).all())
    assert float(out.x_hat.min()) >= 0 and float(out.x_hat.max()) <= 1
