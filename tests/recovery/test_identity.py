"""The one run identity: the folder name, identity.json and the tuning cache derive from it; the Hydra resolver
turns only the user's own problems into an ``unresolved`` folder, never a bug."""

from __future__ import annotations

import pytest

from csgm.cli import plain
from csgm.recovery import identity
from csgm.recovery.run import recover
from tests.helpers import TINY_RECOVER, compose_config


def test_tuning_cache_key_is_the_identity_less_run_only_parts():
    cfg = plain(compose_config("recover", ["solver=sparse_gen", "checkpoint=x.ckpt"]))
    run = identity.run_identity(cfg, "digest")
    context = identity.tuning_context(run)
    assert context["solver"] == {k: v for k, v in run["solver"].items() if k != "label"}
    assert {k: context[k] for k in ("dataset", "operator", "noise", "generator", "precision")} == {
        "dataset": cfg["dataset"],
        "operator": cfg["operator"],
        "noise": cfg["noise"],
        "generator": "digest",
        "precision": run["precision"],
    }


def test_pruning_setting_joins_only_pruning_solvers_identities():
    sparse = identity.run_identity(plain(compose_config("recover", ["solver=sparse_gen"])), "d")
    lasso = identity.run_identity(plain(compose_config("recover", ["solver=lasso"])), "d")
    assert "halving_every" in sparse["tuning"] and "halving_every" not in lasso["tuning"]


def test_the_fingerprint_names_user_problems_unresolved_and_lets_bugs_through(monkeypatch):
    assert compose_config(
        "recover", ["input=file", "file.y=/nonexistent/y.npy", "checkpoint=x.ckpt"]
    ).run_name.endswith("-unresolved")
    monkeypatch.setattr(identity, "run_identity", lambda *args: 1 / 0)
    with pytest.raises(Exception) as info:
        compose_config("recover", ["checkpoint=x.ckpt"]).run_name
    assert "ZeroDivisionError" in repr(info.value) or isinstance(info.value.__cause__, ZeroDivisionError)


def test_results_and_folder_take_the_label_of_the_solver_that_ran(tmp_path, vae_checkpoint):
    cfg = compose_config(
        "recover", [*TINY_RECOVER, f"checkpoint={vae_checkpoint}", "+solver.median_of_means=3", "measurements=[20]"]
    )
    assert cfg.run_name.startswith("csgm_mom3-gaussian-gaussian-")
    (entry,) = recover(cfg, tmp_path / "run")["summary"]
    assert entry["solver"] == "csgm_mom3"
