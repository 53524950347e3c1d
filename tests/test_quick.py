"""``debug=quick`` shrinks any run, experiment or sweep, whatever its solvers, and the folder it writes is named by the
options it actually ran with."""

from __future__ import annotations

import pytest

from csgm.cli import plain
from csgm.recovery.identity import run_fingerprint
from csgm.recovery.quick import quick_config, spread
from csgm.solvers import build_solver, solver_class
from csgm.training.run import quick_training
from tests.helpers import compose_config, conf_options, run_script


def quick(name: str, *overrides: str) -> tuple[dict, dict]:
    """(the composed config, the same shrunk by debug=quick)."""
    full = plain(compose_config(name, [*overrides, "checkpoint=x.ckpt"] if name == "recover" else list(overrides)))
    shrunk = plain(
        compose_config(name, [*overrides, "debug=quick", *(["checkpoint=x.ckpt"] if name == "recover" else [])])
    )
    return full, quick_config(shrunk) if name == "recover" else quick_training(shrunk)


@pytest.mark.parametrize("solver", conf_options("solver"))
def test_every_solver_config_shrinks_and_still_builds(solver):
    full, shrunk = quick("recover", f"solver={solver}")
    cls = solver_class(full["solver"])
    build_solver(shrunk["solver"])  # the shrunk options pass the solver's own checks
    assert cls.work_options, f"{solver} declares no work options"
    for key, least in cls.work_options.items():
        before, after = full["solver"].get(key), shrunk["solver"].get(key)
        if before is not None:  # ilo_qn has no Adam iterations: its first stage shrinks (tests/solvers/test_ilo.py)
            assert after is not None and least <= after <= max(before, least), (key, before, after)
    assert any(shrunk["solver"].get(k, 0) < full["solver"].get(k, 0) for k in cls.work_options), solver


@pytest.mark.parametrize("experiment", [e for e in conf_options("experiment") if e != "tune_csgm"])
def test_every_experiment_shrinks_to_a_few_images_and_m_values(experiment):
    full, shrunk = quick("recover", f"experiment={experiment}")
    assert shrunk["num_images"] == min(full["num_images"], 4)
    grid = full["measurements"]
    if isinstance(grid, list):
        assert shrunk["measurements"] == spread(grid, 2) and shrunk["measurements"] == [grid[0], grid[-1]][: len(grid)]
    for option in str((full.get("sweep") or {}).get("solver", full["solver"]["name"])).split(","):
        _, swept = quick("recover", f"experiment={experiment}", f"solver={option}")
        build_solver(swept["solver"])


def test_the_folder_is_named_by_the_options_that_ran():
    """A quick run and a full run never share a folder; a quick run and the same options given by hand do."""
    quick_cfg = compose_config("recover", ["debug=quick", "checkpoint=null", "solver=lasso", "solver.lambda_l1=0.1"])
    by_hand = compose_config(
        "recover", ["checkpoint=null", "solver=lasso", "solver.lambda_l1=0.1", "solver.max_iterations=250"]
    )
    full = compose_config("recover", ["checkpoint=null", "solver=lasso", "solver.lambda_l1=0.1"])
    assert run_fingerprint(quick_cfg) == run_fingerprint(by_hand) != run_fingerprint(full)


def test_training_shrinks_to_one_short_epoch():
    full, shrunk = quick("train", "experiment=mnist_vae")
    assert full["trainer"]["max_epochs"] > 1
    trainer = shrunk["trainer"]
    assert trainer["max_epochs"] == 1
    assert (trainer["limit_train_batches"], trainer["limit_val_batches"], trainer["limit_test_batches"]) == (10, 10, 10)


def test_spread_keeps_the_ends():
    assert spread([10, 25, 50, 100, 200], 2) == [10, 200]
    assert spread([10, 25, 50, 100, 200], 3) == [10, 50, 200]
    assert spread([25], 2) == [25] and spread([10, 20], 1) == [10]


@pytest.mark.parametrize(
    "sweep", [["-m", "solver=csgm,lasso,csgm_reg"], ["experiment=paper_mnist"]], ids=["command_line", "experiment"]
)
def test_a_sweep_option_that_some_jobs_lack_names_those_jobs(tmp_path, sweep):
    """Hydra checks every job of a sweep before it starts one: the line names the jobs that lack the option (csgm_reg
    and sparse_gen inherit csgm's restarts)."""
    result = run_script(
        "recover.py",
        *sweep,
        "solver.restarts=2",
        "checkpoint=x.ckpt",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("csgm: error: the sweep's job(s) solver=lasso have no option solver.restarts")
    assert "debug=quick" in lines[0]
