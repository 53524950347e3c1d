"""recover.py end to end with the open measurement model: quantised and nonlinear operators with their
baselines, Poisson counts, a quantiser's likelihood; rows record the noise level and errors on x / ||x||
where the norm is lost."""

from __future__ import annotations

import csv
import math

import pytest

from csgm.cli import plain
from csgm.data import load_splits
from csgm.metrics import match_norm, per_pixel_error
from csgm.recovery.run import recover
from csgm.recovery.store import ResultsStore
from tests.helpers import TINY_RECOVER, compose_config


def run(checkpoint, tmp_path, *extra):
    other_solver = any(e.startswith("solver=") for e in extra)  # the tiny CSGM settings do not apply to it
    tiny = [t for t in TINY_RECOVER if not (other_solver and t.startswith("solver."))]
    cfg = compose_config(
        "recover", [*tiny, f"checkpoint={checkpoint}", f"paths.output_root={tmp_path}", "tuning.num_images=4", *extra]
    )
    result = recover(cfg, tmp_path / "run")
    with open(tmp_path / "run" / "results.csv", newline="") as handle:
        return result, list(csv.DictReader(handle))


@pytest.mark.parametrize(
    "extra",
    [
        ["operator=one_bit", "noise=none", "measurements=[100,400]"],
        ["operator=one_bit", "noise=none", "measurements=[100,400]", "solver=biht", "solver.iterations=40"],
        ["operator=one_bit", "operator.dither=10", "noise=gaussian", "measurements=[200]"],
        ["operator=quantize", "operator.bits=3", "measurements=[200]"],
        ["operator=quantize", "operator.bits=3", "measurements=[200]", "solver=lasso", "solver.max_iterations=200"],
        [
            "operator=phase_retrieval",
            "noise=none",
            "measurements=[1568]",
            "solver=wirtinger_flow",
            "solver.iterations=100",
        ],
        ["operator=inpaint", "noise=poisson", "noise.scale=30", "measurements=[300]"],
        ["operator=identity", "noise=student_t"],
        [
            "solver=ilo",
            "solver.iterations=10",
            "solver.restarts=1",
            "solver.layer_iterations=5",
            "solver.radius_grid=[1,10]",
        ],
        ["solver=pgd", "solver.iterations=3", "solver.inner_iterations=3", "solver.step_grid=[1,10]"],
        ["solver=dip", "solver.iterations=5", "measurements=[100]"],
        ["operator=srht", "measurements=[100]"],
    ],
    ids=[
        "one_bit-csgm",
        "one_bit-biht",
        "one_bit-dither",
        "quantize-csgm",
        "quantize-lasso",
        "phase-wf",
        "poisson",
        "student_t",
        "ilo",
        "pgd",
        "dip",
        "srht",
    ],
)
def test_every_measurement_model_runs_end_to_end(vae_checkpoint, tmp_path, extra):
    result, rows = run(vae_checkpoint, tmp_path, *extra)
    assert rows and all(r["status"] in ("ok", "not_converged") for r in rows)  # no failed image
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("mse", "psnr", "ssim", "measurement_loss"))
    assert all(float(r["measurement_loss"]) >= 0 for r in rows)
    assert len(result["summary"]) == len({int(r["m"]) for r in rows})


def test_rows_record_the_noise_level_and_tuned_sparsity(vae_checkpoint, tmp_path):
    _, poisson = run(vae_checkpoint, tmp_path / "p", "operator=identity", "noise=poisson", "noise.scale=25")
    assert {float(r["noise_std"]) for r in poisson} == {0.2}  # 1 / sqrt(scale)
    result, biht = run(
        vae_checkpoint,
        tmp_path / "b",
        "operator=one_bit",
        "noise=none",
        "measurements=[200]",
        "solver=biht",
        "solver.iterations=30",
        "solver.sparsity_grid=[5,40]",
    )
    assert result["summary"][0]["params"] in ('{"sparsity": 5}', '{"sparsity": 40}')


def test_one_bit_error_is_taken_on_the_direction(vae_checkpoint, tmp_path):
    """Without dither the reported error is that of x_hat rescaled to ||x|| (the literature's error on x / ||x||)."""
    cfg_extra = ("operator=one_bit", "noise=none", "measurements=[300]", "solver.iterations=60")
    _, rows = run(vae_checkpoint, tmp_path, *cfg_extra)
    x_hat = ResultsStore(tmp_path / "run").reconstructions()
    test = load_splits(plain(compose_config("recover", []))["dataset"])["test"]
    for row in rows:
        image_id = int(row["image_id"])
        x = test[image_id][0][None].double()
        estimate = x_hat[(300, image_id)][None].double()
        assert float(row["mse"]) == pytest.approx(float(per_pixel_error(match_norm(estimate, x), x)), rel=1e-5)
        assert float(row["mse"]) != pytest.approx(float(per_pixel_error(estimate, x)), rel=1e-3)
