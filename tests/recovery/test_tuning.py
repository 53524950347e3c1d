"""Hyperparameters chosen per m on the validation split: best candidate, cached, recorded, never on test."""

from __future__ import annotations

import json

import pytest
import torch

from csgm.errors import CsgmError
from csgm.metrics import per_pixel_error
from csgm.operators import Noise, build_operator
from csgm.recovery import tuning
from csgm.recovery.run import recover
from csgm.solvers import build_solver
from tests.helpers import TINY_RECOVER, compose_config

LASSO = {"name": "lasso", "lambda_l1": "auto", "lambda_grid": [0.01, 0.3, 30.0], "max_iterations": 300}


def digits(count=6):
    from csgm.data import load_splits

    val = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})["val"]
    return torch.stack([val[i][0] for i in range(count)])


def test_batched_validation_errors_match_one_by_one():
    x = digits()
    A = build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=300)
    y = Noise("gaussian", 0.1)(A(x), list(range(6)), key=(0, "gaussian", 300, "validation"))
    batched = tuning.validation_errors(LASSO, [{"lambda_l1": v} for v in LASSO["lambda_grid"]], x, y, A, None, 0)
    single = [float(per_pixel_error(build_solver({**LASSO, "lambda_l1": v}).solve(y, A, range(6)).x_hat, x).mean())
              for v in LASSO["lambda_grid"]]
    assert batched == pytest.approx(single, rel=1e-3)  # float32 sums differ in the last bits between batch sizes


def test_tuning_picks_the_best_and_caches(tmp_path, monkeypatch):
    x = digits()
    operators = [build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=m) for m in (100, 500)]
    solvers = tuning.tune_per_m(LASSO, operators, x, Noise("gaussian", 0.1), None, 0, tmp_path, {"dataset": "d"})
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert len(records) == 2
    for record in records:
        assert record["value"] == record["candidates"][min(range(3), key=record["errors"].__getitem__)]
        assert set(record["value"]) == {"lambda_l1"}
    assert {s.tuned["lambda_l1"] for s in solvers} <= set(LASSO["lambda_grid"])

    monkeypatch.setattr(tuning, "validation_errors", lambda *a, **k: pytest.fail("the cache was not used"))
    again = tuning.tune_per_m(LASSO, operators, x, Noise("gaussian", 0.1), None, 0, tmp_path, {"dataset": "d"})
    assert [s.tuned for s in again] == [s.tuned for s in solvers]


def test_tuning_errors():
    A = [build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=50)]
    with pytest.raises(CsgmError, match=r"needs validation images, but the val split is empty"):
        tuning.tune_per_m(LASSO, A, torch.zeros(0, 1, 28, 28), Noise("none"), None, 0, None, {})
    with pytest.raises(CsgmError, match=r"needs candidates: set solver.lambda_grid"):
        tuning.tune_per_m({**LASSO, "lambda_grid": []}, A, digits(2), Noise("none"), None, 0, None, {})


def test_recover_records_the_chosen_lambda(tmp_path):
    cfg = compose_config("recover", [*TINY_RECOVER[:3], "solver=lasso", "solver.max_iterations=200", "num_images=3",
                                     "measurements=[100,400]", "tuning.num_images=4", f"paths.output_root={tmp_path}"])
    result = recover(cfg, tmp_path / "run")
    params = [json.loads(s["params"]) for s in result["summary"]]
    assert all(set(p) == {"lambda_l1"} for p in params)
    assert len(list((tmp_path / "tuning").glob("*.json"))) == 2
