"""Hyperparameters chosen per m on the validation split: best candidate, cached, recorded, never on test."""

from __future__ import annotations

import json

import pytest
import torch

from csgm.errors import CsgmError
from csgm.measurement import MeasurementModel
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
    batched = tuning.validation_errors(
        build_solver(LASSO), [{"lambda_l1": v} for v in LASSO["lambda_grid"]], x, y, A, None, 0
    )
    single = [
        float(per_pixel_error(build_solver({**LASSO, "lambda_l1": v}).solve(y, A, range(6)).x_hat, x).mean())
        for v in LASSO["lambda_grid"]
    ]
    assert batched == pytest.approx(single, rel=1e-3)  # float32 sums differ in the last bits between batch sizes


def test_tuning_picks_the_best_and_caches(tmp_path, monkeypatch):
    x = digits()
    models = [
        MeasurementModel(build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=m), Noise("gaussian", 0.1))
        for m in (100, 500)
    ]
    solver = build_solver(LASSO)
    chosen = tuning.tune_per_m(solver, models, x, None, 0, tmp_path, {"dataset": "d"})
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert len(records) == 2
    for record in records:
        assert record["value"] == record["candidates"][min(range(3), key=record["errors"].__getitem__)]
        assert set(record["value"]) == {"lambda_l1"}
    for tuned, params in chosen:
        assert params["lambda_l1"] in LASSO["lambda_grid"] and tuned.lambda_l1 == params["lambda_l1"]
        assert tuned is not solver and tuned.bases is solver.bases  # a copy sharing the cached ||A||
    assert solver.lambda_l1 == "auto"  # the searched solver itself is never changed

    monkeypatch.setattr(tuning, "validation_errors", lambda *a, **k: pytest.fail("the cache was not used"))
    again = tuning.tune_per_m(solver, models, x, None, 0, tmp_path, {"dataset": "d"})
    assert [params for _, params in again] == [params for _, params in chosen]


def test_a_search_builds_no_solver_and_measures_the_norm_once(monkeypatch):
    """Candidates are copies of one solver: no config is rebuilt and ||A|| is computed once per operator."""
    x = digits(3)
    model = MeasurementModel(build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=100), Noise("gaussian", 0.1))
    solver = build_solver({**LASSO, "lambda_grid": [0.01, 0.1, 1.0, 10.0]})
    norms = []
    original = type(model.operator).norm_squared
    monkeypatch.setattr(
        type(model.operator), "norm_squared", lambda self, *a, **k: norms.append(1) or original(self, *a, **k)
    )
    monkeypatch.setattr(
        "csgm.solvers.build_solver", lambda *a, **k: pytest.fail("a solver was rebuilt from its config")
    )
    y = model.measure(x, range(3))
    sparse_gen = build_solver(
        {
            "name": "sparse_gen",
            "lambda_nu": "auto",
            "lambda_grid": [0.1, 1.0],
            "iterations": 2,
            "restarts": 1,
            "use_generator": False,
            "polish_iterations": 20,
        }
    )
    for candidate_solver in (solver, sparse_gen):
        tuning.validation_errors(candidate_solver, candidate_solver.candidates(), x, y, model, None, 0)
    assert len(norms) == 2  # once per solver's basis cache, not once per candidate


def test_tuning_errors():
    A = [MeasurementModel(build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=50))]
    with pytest.raises(CsgmError, match=r"needs validation images, but the val split is empty"):
        tuning.tune_per_m(build_solver(LASSO), A, torch.zeros(0, 1, 28, 28), None, 0, None, {})
    with pytest.raises(CsgmError, match=r"needs candidates: set solver.lambda_grid"):
        tuning.tune_per_m(build_solver({**LASSO, "lambda_grid": []}), A, digits(2), None, 0, None, {})


def test_recover_records_the_chosen_lambda(tmp_path):
    cfg = compose_config(
        "recover",
        [
            *TINY_RECOVER[:3],
            "solver=lasso",
            "solver.max_iterations=200",
            "num_images=3",
            "measurements=[100,400]",
            "tuning.num_images=4",
            f"paths.output_root={tmp_path}",
        ],
    )
    result = recover(cfg, tmp_path / "run")
    params = [json.loads(s["params"]) for s in result["summary"]]
    assert all(set(p) == {"lambda_l1"} for p in params)
    assert len(list((tmp_path / "tuning").glob("*.json"))) == 2


def test_a_search_with_restarts_halves_them_and_keys_its_cache_by_it(tmp_path, monkeypatch):
    sparse_gen = build_solver({"name": "sparse_gen", "lambda_grid": [1.0, 100.0], "restarts": 4, "iterations": 20})
    assert sparse_gen.search_copy(0) is sparse_gen and sparse_gen.search_copy(10).halving_every == 10
    assert sparse_gen.halving_every == 0  # the test run keeps every restart
    own = sparse_gen.with_options(halving_every=5)
    assert own.search_copy(10) is own  # a solver that halves already searches with its own schedule
    lasso = build_solver(LASSO)
    assert lasso.search_copy(10) is lasso

    searched = []
    monkeypatch.setattr(
        tuning,
        "validation_errors",
        lambda solver, candidates, *a: (
            searched.append(solver.halving_every) or [float(i) for i in range(len(candidates))]
        ),
    )
    model = MeasurementModel(build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=50), Noise("gaussian", 0.1))
    for halving in (10, 0, 10):
        tuning.tune_per_m(sparse_gen, [model], digits(2), None, 0, tmp_path, {"dataset": "d"}, halving)
    assert searched == [10, 0]  # the third search found the first one's cache; the second had its own
    assert len(list(tmp_path.glob("*.json"))) == 2
