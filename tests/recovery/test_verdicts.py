"""Every row says whether to trust it (csgm.recovery.verdicts): a table of runs that are known to be broken in one
way, each with the status and the flag it must get; stages that never return worse than their start; and the
data-fit check against its own null distribution (measurements of the true image)."""

from __future__ import annotations

import pytest
import torch

from csgm.generators import build_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.recovery.store import result_rows
from csgm.recovery.verdicts import FIT_P, Verdict, data_fit, verdicts
from csgm.results import summarise
from csgm.solvers import build_solver
from tests.solvers.test_langevin import SHAPE, LinearGenerator

IDS = [0, 1]


@pytest.fixture(scope="module")
def linear():
    """A linear G (3 latents, 16 pixels) and Gaussian measurements of two images in its range."""
    g = torch.Generator().manual_seed(0)
    generator = LinearGenerator(
        0.05 * torch.randn(16, 3, generator=g, dtype=torch.float64), torch.full((16,), 0.5, dtype=torch.float64)
    )
    model = MeasurementModel(
        build_operator({"name": "gaussian", "normalize": True}, SHAPE, seed=0, m=8).double(),
        Noise("gaussian", 0.02),
        seed=0,
    )
    x = generator(torch.randn(2, 3, generator=g, dtype=torch.float64))
    return generator, model, model.measure(x, IDS)


@pytest.fixture(scope="module")
def layered():
    """A small untrained VAE decoder (it has layers, for ILO) and noise-free measurements of images outside its range."""
    torch.manual_seed(0)
    generator = build_generator("vae", {"latent_dim": 3, "hidden_dims": [64, 64]}, SHAPE).eval().requires_grad_(False)
    model = MeasurementModel(build_operator({"name": "gaussian"}, SHAPE, seed=0, m=12), Noise("gaussian", 0.01))
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(3))
    return generator, model, model.measure(x, IDS)


MALA_STUCK = {"name": "langevin", "mala": True, "chains": 4, "steps": 60, "burn_in": 1, "thin": 1, "step_size": 100.0}
BROKEN = [
    # (case, solver options, the expected status, a flag its reason must hold)
    ("mala chains that never moved", MALA_STUCK, "not_converged", "acceptance<0.05"),
    ("mala chains that never moved, unmixed", MALA_STUCK, "not_converged", "rhat>1.1"),
    (
        "thinning leaves one draw per chain",
        {"name": "langevin", "chains": 4, "steps": 30, "burn_in": 20, "thin": 50, "step_size": 1e-4},
        "unreliable",
        "few_samples",
    ),
    (
        "langevin with a huge step",
        {"name": "langevin", "chains": 4, "steps": 40, "burn_in": 1, "thin": 1, "step_size": 1e4},
        "not_converged",
        "data_term_rose",
    ),
    (
        "csgm whose latent ran off",
        {"name": "csgm", "restarts": 1, "iterations": 30, "lr": 1e5},
        "unreliable",
        "latent_norm",
    ),
    (
        "hmc chains left at their starts",
        {
            "name": "hmc",
            "mode_starts": 4,
            "mode_steps": 0,
            "resample_modes": False,
            "warmup": 0,
            "draws": 50,
            "initial_step": 1e-6,
        },
        "not_converged",
        "rhat>1.01",
    ),
    (
        "lasso stopped by its iteration cap",
        {"name": "lasso", "lambda_l1": 0.01, "max_iterations": 3},
        "not_converged",
        "no_convergence",
    ),
]


@pytest.mark.parametrize("case,options,status,flag", BROKEN, ids=[case for case, *_ in BROKEN])
def test_a_broken_run_gets_its_status_and_reason(linear, case, options, status, flag):
    generator, model, y = linear
    solver = build_solver(options)
    out = solver.solve(y, model, IDS, generator, seed=0)
    for verdict in verdicts(out, solver.health_limits):
        assert verdict.status == status and flag in verdict.reason.split(";"), (case, verdict)


def test_a_generator_that_only_gives_nan_is_diverged(linear):
    generator, model, y = linear
    broken = LinearGenerator(torch.full_like(generator.weight, float("nan")), generator.bias)
    solver = build_solver({"name": "csgm", "restarts": 2, "iterations": 5})
    out = solver.solve(y, model, IDS, broken, seed=0)
    assert verdicts(out, solver.health_limits) == [Verdict("diverged", "all_restarts_diverged")] * 2


def test_sound_runs_are_ok(linear):
    """The same solvers with working settings: nothing flagged."""
    generator, model, y = linear
    for options in (
        {"name": "csgm", "restarts": 2, "iterations": 200, "lr": 0.05},
        {"name": "hmc", "mode_starts": 8, "mode_steps": 5, "warmup": 50, "draws": 150, "chains": 8, "max_rhat": 1.05},
    ):
        solver = build_solver(options)
        out = solver.solve(y, model, IDS, generator, seed=0)
        assert verdicts(out, solver.health_limits) == [Verdict("ok")] * 2, options


@pytest.mark.parametrize(
    "options",
    [
        {"name": "ilo", "restarts": 2, "iterations": 50, "radius": 1e4, "layer_iterations": 30, "layer_lr": 1e3},
        {"name": "pgd", "iterations": 8, "step": 1e3, "inner_iterations": 10},
    ],
    ids=["ilo", "pgd"],
)
def test_a_stage_never_returns_worse_than_its_start(layered, options):
    """ILO with a layer step far too large and PGD with a gradient step far too large: their searches make the
    estimate worse, and each keeps the better one (CSGM's estimate; the best iterate) by the data term."""
    generator, model, y = layered
    solver = build_solver(options)
    out = solver.solve(y, model, IDS, generator, seed=0)
    assert bool((out.measurement_loss <= out.start_loss).all())
    torch.testing.assert_close(out.measurement_loss, model.loss(out.x_hat, y))
    assert all("data_term_rose" not in v.reason for v in verdicts(out, solver.health_limits))
    if options["name"] == "ilo":  # the layer search made every row worse here: CSGM's estimate is kept exactly
        start = build_solver(
            {k: v for k, v in options.items() if not k.startswith(("layer", "radius"))} | {"name": "csgm"}
        )
        torch.testing.assert_close(out.x_hat, start.solve(y, model, IDS, generator, seed=0).x_hat)


@pytest.mark.parametrize(
    "noise,operator",
    [(Noise("gaussian", 0.05), "gaussian"), (Noise("poisson", scale=2000.0), "identity")],
    ids=["gaussian", "poisson"],
)
def test_the_true_image_fits_its_own_measurements(noise, operator):
    """Under the null (x_hat = x), 400 images' rows are misfit or overfit at the test's rate (2 x 1e-3 expected: at
    most 4 of 400 here), and their standardised residuals average 1."""
    shape = (1, 8, 8)
    model = MeasurementModel(build_operator({"name": operator}, shape, seed=0, m=40).double(), noise, seed=0)
    x = 0.2 + 0.8 * torch.rand(400, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ids = list(range(400))
    fits = data_fit(model, model.loss(x, model.measure(x, ids)), model.operator.output_size)
    labels = [fit.label for fit in fits]
    assert labels.count("consistent") >= 396, {label: labels.count(label) for label in set(labels)}
    mean = sum(fit.standardised_residual for fit in fits) / len(fits)
    assert abs(mean - 1) < 3 * (2 / model.operator.output_size / 400) ** 0.5 * 1.5


def test_data_fit_labels_follow_the_chi_square_tails():
    """m = 100, sigma = 0.1: a data term of m sigma^2 = 1 is consistent; 2x is far in the upper tail (misfit); 0.4x far
    in the lower one (overfit); the statistic is the residual over m sigma^2."""
    model = MeasurementModel(build_operator({"name": "gaussian"}, (1, 16, 16), seed=0, m=100), Noise("gaussian", 0.1))
    fits = data_fit(model, torch.tensor([1.0, 2.0, 0.4]), 100)
    assert [f.label for f in fits] == ["consistent", "misfit", "overfit"]
    assert [round(f.standardised_residual, 6) for f in fits] == [1.0, 2.0, 0.4]
    assert 0 < FIT_P < 0.01


@pytest.mark.parametrize(
    "noise", [Noise("none"), Noise("student_t", 0.1), Noise("outliers", 0.1)], ids=["none", "student_t", "outliers"]
)
def test_data_fit_is_left_empty_where_it_does_not_apply(noise):
    model = MeasurementModel(build_operator({"name": "gaussian"}, (1, 8, 8), seed=0, m=10), noise)
    assert [(f.standardised_residual, f.label) for f in data_fit(model, torch.tensor([0.5]), 10)] == [(None, "")]


def test_rows_and_summaries_carry_the_verdicts(linear):
    """results rows hold status, reason, data fit and the sampler's R-hat/ESS; the summary counts the flagged rows
    it averages (unreliable, not converged) and the misfit rows."""
    generator, model, y = linear
    solver = build_solver(MALA_STUCK)
    out = solver.solve(y, model, IDS, generator, seed=0)
    names = {"solver": "langevin", "operator": "gaussian", "noise": "gaussian"}
    rows = result_rows(out, None, IDS, names, model, solver.health_limits, 1.0, {})
    assert {r["status"] for r in rows} == {"not_converged"} and all(r["rhat"] > 1.1 for r in rows)
    assert all(r["data_fit"] in ("consistent", "misfit", "overfit") for r in rows)
    rows[1] = {**rows[1], "status": "unreliable", "data_fit": "misfit"}
    (summary,) = summarise(rows)
    assert (summary["images"], summary["failed"], summary["not_converged"], summary["unreliable"]) == (2, 0, 1, 1)
    assert summary["misfit"] >= 1
