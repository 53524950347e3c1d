"""The documented Optuna example (experiment=tune_csgm) runs as a sweep on validation images and reports the best
trial, whose value is that trial's mean per-pixel error."""

from __future__ import annotations

import csv

import pytest
import yaml

from tests.helpers import TINY_RECOVER, run_script

pytestmark = pytest.mark.slow  # a two-trial sweep through recover.py

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")


def test_tune_csgm_sweeps_on_validation_images_and_reports_the_best_trial(vae_checkpoint, tmp_path):
    result = run_script(
        "recover.py",
        "-m",
        "experiment=tune_csgm",
        "hydra.sweeper.n_trials=2",
        *TINY_RECOVER,
        "num_images=2",
        f"checkpoint={vae_checkpoint}",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    best = yaml.safe_load((tmp_path / "recover" / "optimization_results.yaml").read_text())
    errors = {}
    for summary in tmp_path.glob("recover/csgm-*/summary.csv"):
        (row,) = csv.DictReader(summary.open())
        errors[summary.parent.name] = float(row["mse_mean"])
        identity = yaml.safe_load((summary.parent / "identity.json").read_text())["identity"]
        assert identity["input"] == "val"  # tuned on validation images, never the test split
    assert len(errors) == 2
    assert best["best_value"] == pytest.approx(min(errors.values()), rel=1e-12)
    assert set(best["best_params"]) == {"solver.lr", "solver.lambda_z"}
