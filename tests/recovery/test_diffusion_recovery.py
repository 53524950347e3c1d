"""The diffusion solvers through recover.py: estimates that do not depend on the batch size or the number of
processes, and a crashed run that resumes without recomputing what it wrote."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from csgm.recovery.run import recover
from csgm.solvers.dps import DPSSolver
from tests.helpers import compose_config, crash_on_solve, run_script
from tests.recovery.test_recover import assert_two_ranks_shared_the_work

SOLVERS = {
    "dps": ["solver=dps", "solver.steps=6", "solver.weight=0.3"],
    "diffusion_langevin": [
        "solver=diffusion_langevin",
        "solver.levels=4",
        "solver.steps_per_level=2",
        "solver.chains=2",
        "solver.keep_samples=2",
    ],
    "csgm_ddim": ["solver=csgm_ddim", "solver.ddim_steps=2", "solver.iterations=5", "solver.restarts=2"],
}
COMMON = [
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "logger=none",
    "num_images=4",
    "save_images=2",
]


def overrides(checkpoint: str, root: Path, solver: str, *extra: str) -> list[str]:
    return [*COMMON, f"checkpoint={checkpoint}", f"paths.output_root={root}", *SOLVERS[solver], *extra]


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def estimates(run_dir: Path) -> torch.Tensor:
    return torch.load(run_dir / "reconstructions.pt", weights_only=True)["x_hat"]


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_estimates_do_not_depend_on_the_batch_size(diffusion_checkpoint, tmp_path, solver):
    """Every draw (the initial noise, DPS's and Langevin's per-step noise, csgm_ddim's starts) comes from the
    image's own stream: one image per batch and all four in one batch give the same estimates and rows."""
    runs = {}
    for batch in (1, 4):
        cfg = compose_config(
            "recover", overrides(diffusion_checkpoint, tmp_path, solver, "measurements=[30]", f"batch_size={batch}")
        )
        recover(cfg, tmp_path / f"batch{batch}")
        runs[batch] = tmp_path / f"batch{batch}"
    torch.testing.assert_close(estimates(runs[1]), estimates(runs[4]), atol=1e-4, rtol=0)
    for a, b in zip(rows(runs[1]), rows(runs[4])):
        assert (a["image_id"], a["status"], a["generator_evaluations"]) == (
            b["image_id"],
            b["status"],
            b["generator_evaluations"],
        )
        assert float(a["mse"]) == pytest.approx(float(b["mse"]), rel=1e-3, abs=1e-6)


def test_a_crashed_dps_run_resumes_without_recomputing(diffusion_checkpoint, tmp_path, monkeypatch):
    extra = ("measurements=[20,40]", "batch_size=2")
    reference_cfg = compose_config("recover", overrides(diffusion_checkpoint, tmp_path, "dps", *extra))
    reference = recover(reference_cfg, tmp_path / "reference")
    calls = crash_on_solve(monkeypatch, DPSSolver, 3)
    cfg = compose_config("recover", overrides(diffusion_checkpoint, tmp_path, "dps", *extra))
    with pytest.raises(RuntimeError, match="simulated crash"):
        recover(cfg, tmp_path / "run")
    shards = sorted((tmp_path / "run" / "shards").glob("*.pt"))
    assert len(shards) == 2  # two (m, batch) pieces finished before the crash
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    calls["count"] = -100
    resumed = recover(cfg, tmp_path / "run")
    assert calls["count"] == -100 + 2  # 2 m x 2 batches = 4 pieces, 2 already done
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    untimed = lambda table: [{k: v for k, v in r.items() if k != "seconds"} for r in table]  # noqa: E731
    assert untimed(rows(tmp_path / "run")) == untimed(rows(tmp_path / "reference"))
    assert resumed["summary"] == reference["summary"]


@pytest.mark.slow
def test_two_cpu_processes_match_one_for_dps(diffusion_checkpoint, tmp_path):
    """DDP (gloo, 2 processes): each rank runs DPS on its share, rank 0 merges; the estimates equal one process's."""
    common = [*COMMON, f"checkpoint={diffusion_checkpoint}", *SOLVERS["dps"], "measurements=[30]", "batch_size=2"]
    common = [o if o != "num_images=4" else "num_images=5" for o in common]
    one = run_script("recover.py", *common, f"paths.output_root={tmp_path / 'one'}", cwd=tmp_path)
    two = run_script("recover.py", *common, "trainer=ddp", f"paths.output_root={tmp_path / 'two'}", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    (dir_one,), (dir_two,) = (tmp_path / "one" / "recover").iterdir(), (tmp_path / "two" / "recover").iterdir()
    assert dir_one.name == dir_two.name  # the process count is not part of the run's identity
    assert_two_ranks_shared_the_work(dir_two, [(30, i) for i in range(5)])
    torch.testing.assert_close(estimates(dir_one), estimates(dir_two), atol=1e-4, rtol=0)
