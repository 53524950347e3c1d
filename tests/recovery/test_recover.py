"""recover.py end to end: results, plots, resume after a crash, DDP on CPU, multirun, bad input."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from csgm.errors import CsgmError
from csgm.recovery.run import recover
from csgm.recovery.store import ResultsStore
from csgm.solvers.csgm import CSGMSolver
from tests.helpers import TINY_RECOVER, compose_config, crash_on_solve, requires_compiler, run_script, write_images


def read_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def config(checkpoint, tmp_path, *extra):
    return compose_config(
        "recover", [*TINY_RECOVER, f"checkpoint={checkpoint}", f"paths.output_root={tmp_path}", *extra]
    )


def test_recover_writes_results_plot_and_grid(vae_checkpoint, tmp_path):
    result = recover(config(vae_checkpoint, tmp_path, "measurements=[20,40]"), tmp_path / "run")
    rows = read_rows(tmp_path / "run")
    assert sorted((int(r["m"]), int(r["image_id"])) for r in rows) == [(m, i) for m in (20, 40) for i in range(6)]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("mse", "psnr", "ssim", "measurement_loss"))
    assert all(r["status"] == "ok" for r in rows)
    for name in ("curve", "recovery_grid", "summary"):
        assert Path(result["paths"][name]).is_file()
    assert [s["m"] for s in result["summary"]] == [20, 40]


def test_the_merge_keeps_the_grids_estimates_in_memory_and_writes_every_one(vae_checkpoint, tmp_path, monkeypatch):
    """With save_images=2 of 6 images the merge holds 2 estimates per m; reconstructions.pt has all 12, equal to
    the shards' estimates, and no temporary file or buffer stays in the run folder."""
    kept: dict = {}
    merge = ResultsStore.merge

    def spying_merge(store, *args, **kwargs):
        merged = merge(store, *args, **kwargs)
        kept.update(merged.x_hat)
        return merged

    monkeypatch.setattr(ResultsStore, "merge", spying_merge)
    run_dir = tmp_path / "run"
    recover(config(vae_checkpoint, tmp_path, "measurements=[20,40]", "save_images=2", "batch_size=4"), run_dir)
    assert sorted(kept) == [(m, i) for m in (20, 40) for i in range(2)]
    saved = torch.load(run_dir / "reconstructions.pt", weights_only=True)
    keys = [(m, i) for m in (20, 40) for i in range(6)]
    assert [tuple(k) for k in saved["keys"].tolist()] == keys
    from_shards = {
        (int(r["m"]), int(r["image_id"])): x
        for s in ResultsStore(run_dir).shards()
        for r, x in zip(s["rows"], s["x_hat"])
    }
    assert torch.equal(saved["x_hat"], torch.stack([from_shards[k] for k in keys]))
    assert all(torch.equal(kept[k], from_shards[k]) for k in kept)
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == [".lock"]


def test_fixed_m_operator_and_gen_span_input(vae_checkpoint, tmp_path):
    result = recover(
        config(vae_checkpoint, tmp_path, "operator=superres", "input=gen_span", "noise=none"), tmp_path / "run"
    )
    assert [s["m"] for s in result["summary"]] == [7 * 7]
    originals = torch.load(tmp_path / "run" / "originals.pt", weights_only=True)
    assert originals["images"].shape == (4, 1, 28, 28)


def test_resume_after_a_crash_recomputes_nothing(vae_checkpoint, tmp_path, monkeypatch):
    extra = ("measurements=[20,40]", "batch_size=2")
    reference = recover(config(vae_checkpoint, tmp_path, *extra), tmp_path / "reference")
    calls = crash_on_solve(monkeypatch, CSGMSolver, 4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        recover(config(vae_checkpoint, tmp_path, *extra), tmp_path / "run")
    shards = sorted((tmp_path / "run" / "shards").glob("*.pt"))
    assert len(shards) == 3  # three (m, batch) pieces finished before the crash
    stamps = {p: p.stat().st_mtime_ns for p in shards}

    calls["count"] = -100  # no more crashes; count the remaining solves
    resumed = recover(config(vae_checkpoint, tmp_path, *extra), tmp_path / "run")
    assert calls["count"] == -100 + 3  # 2 m x 3 batches = 6 pieces, 3 already done
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    untimed = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert untimed(read_rows(tmp_path / "run")) == untimed(read_rows(tmp_path / "reference"))
    assert resumed["summary"] == reference["summary"]


def test_an_interrupt_loses_at_most_one_batch_of_one_m(vae_checkpoint, tmp_path, monkeypatch):
    """A batch never spans two m: with every image in one batch, a crash while solving m = 40 keeps m = 20's rows."""
    original_solve = CSGMSolver.solve

    def crash_at_40(self, y, measurement, *args, **kwargs):
        if measurement.operator.m == 40:
            raise RuntimeError("simulated crash")
        return original_solve(self, y, measurement, *args, **kwargs)

    monkeypatch.setattr(CSGMSolver, "solve", crash_at_40)
    with pytest.raises(RuntimeError, match="simulated crash"):
        recover(config(vae_checkpoint, tmp_path, "measurements=[20,40]", "batch_size=100"), tmp_path / "run")
    assert ResultsStore(tmp_path / "run").done() == {(20, i) for i in range(6)}


def test_bigger_grid_and_more_images_only_add_the_new_pairs(vae_checkpoint, tmp_path, monkeypatch):
    recover(config(vae_checkpoint, tmp_path, "measurements=[20]", "num_images=3"), tmp_path / "run")
    seen = []
    original_solve = CSGMSolver.solve
    monkeypatch.setattr(
        CSGMSolver,
        "solve",
        lambda self, y, A, ids, *a, **k: (
            seen.append((A.operator.m, list(ids))) or original_solve(self, y, A, ids, *a, **k)
        ),
    )
    recover(config(vae_checkpoint, tmp_path, "measurements=[20,40]", "num_images=4"), tmp_path / "run")
    assert seen == [(20, [3]), (40, [0, 1, 2, 3])]


def test_checkpoint_that_does_not_fit_the_dataset(vae_checkpoint, tmp_path):
    write_images(tmp_path / "faces", 20, (32, 32))
    cfg = config(
        vae_checkpoint,
        tmp_path,
        "dataset=folder",
        f"dataset.data_dir={tmp_path / 'faces'}",
        "dataset.image_size=32",
        "num_images=2",
    )
    with pytest.raises(
        CsgmError, match=r"makes 1x28x28 images \(trained on 'mnist10k'\) but dataset 'folder' has 3x32x32"
    ):
        recover(cfg, tmp_path / "run")


@pytest.mark.parametrize(
    "extra,match",
    [
        (["measurements=[100,1000]"], r"m=1000 is out of range; it must be in \[1, 784\]"),
        (["measurements=[]"], r"measurements=\[\] is empty"),
        (["num_images=5000"], r"num_images=5000 is out of range; the test split of mnist10k has 1000 images"),
        (["input=train"], r"input='train' must be one of 'test', 'val', 'gen_span'"),
        (["logger=wandb", "logger.mode=cloud"], r"logger.mode='cloud' must be one of 'offline', 'online', 'disabled'"),
    ],
)
def test_bad_recovery_input(vae_checkpoint, tmp_path, extra, match):
    with pytest.raises(CsgmError, match=match):
        recover(config(vae_checkpoint, tmp_path, *extra), tmp_path / "run")
    assert not list((tmp_path / "run").glob("shards/*.pt"))  # nothing was recovered before the error


def test_recovery_logs_to_wandb_offline(vae_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    recover(config(vae_checkpoint, tmp_path, "logger=wandb", "measurements=[20]", "num_images=2"), tmp_path / "run")
    (offline_run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert list(offline_run.glob("run-*.wandb"))  # the offline run file `wandb sync` uploads later


@pytest.mark.slow
def test_recover_script_prints_table_and_resumes(vae_checkpoint, tmp_path):
    args = [*TINY_RECOVER, f"checkpoint={vae_checkpoint}", f"paths.output_root={tmp_path}", "measurements=[20,40]"]
    first = run_script("recover.py", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "per-pixel error" in first.stdout and "error_vs_m.png" in first.stdout
    (run_dir,) = (tmp_path / "recover").iterdir()
    stamps = {p: p.stat().st_mtime_ns for p in (run_dir / "shards").glob("*.pt")}
    second = run_script("recover.py", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "shards").glob("*.pt")} == stamps
    table = lambda out: [l for l in out.splitlines() if l.startswith("csgm ")]  # noqa: E731
    assert table(first.stdout) == table(second.stdout) and len(table(first.stdout)) == 2


def test_speed_options_keep_the_run_folder():
    """flush_denormals and compile change how fast, not what: a run resumes in the same folder."""
    folder = lambda *extra: compose_config("recover", ["checkpoint=x.ckpt", *extra]).run_name  # noqa: E731
    assert folder() == folder("solver.compile=true") == folder("solver.flush_denormals=false")
    assert folder() != folder("solver.lr=0.02")


@pytest.mark.slow
def test_recover_script_errors_are_one_line(tmp_path):
    result = run_script("recover.py", *TINY_RECOVER, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "csgm: error: checkpoint=latest found no checkpoints/last.ckpt" in result.stderr


@requires_compiler
@pytest.mark.slow
def test_two_cpu_processes_match_one(vae_checkpoint, tmp_path):
    """Also runs the compiled gradient inside Lightning's predict loop in spawned processes."""
    common = [*TINY_RECOVER, f"checkpoint={vae_checkpoint}", "measurements=[20,40]", "num_images=5", "batch_size=2"]
    one = run_script("recover.py", *common, f"paths.output_root={tmp_path / 'one'}", cwd=tmp_path)
    two = run_script(
        "recover.py",
        *common,
        "trainer=ddp",
        "solver.compile=true",
        f"paths.output_root={tmp_path / 'two'}",
        cwd=tmp_path,
    )
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    (dir_one,), (dir_two,) = (tmp_path / "one" / "recover").iterdir(), (tmp_path / "two" / "recover").iterdir()
    assert_two_ranks_shared_the_work(dir_two, [(m, i) for m in (20, 40) for i in range(5)])
    assert_same_estimates(dir_one, dir_two)


def assert_two_ranks_shared_the_work(run_dir: Path, pairs: list) -> None:
    """Both ranks wrote shards, and the shards (before any de-duplication) cover every (m, image) exactly once."""
    shards = ResultsStore(run_dir).shards()
    by_rank = {
        rank: [(int(r["m"]), int(r["image_id"])) for s in shards if s["rank"] == rank for r in s["rows"]]
        for rank in (0, 1)
    }
    assert by_rank[0] and by_rank[1] and len(shards) == len([s for s in shards if s["rank"] in (0, 1)])
    assert sorted(by_rank[0] + by_rank[1]) == sorted(pairs)


def assert_same_estimates(dir_one: Path, dir_two: Path) -> None:
    rows_one, rows_two = read_rows(dir_one), read_rows(dir_two)
    assert [(a["m"], a["image_id"]) for a in rows_one] == [(b["m"], b["image_id"]) for b in rows_two]
    for a, b in zip(rows_one, rows_two):
        assert float(a["mse"]) == pytest.approx(float(b["mse"]), rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_two_processes_started_by_torchrun(vae_checkpoint, tmp_path):
    """The ddp_cluster route: torchrun starts two processes, each runs recover(), rank 0 merges after the barrier."""
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    common = [*TINY_RECOVER, f"checkpoint={vae_checkpoint}", "measurements=[20,40]", "num_images=5", "batch_size=2"]
    one = run_script("recover.py", *common, f"paths.output_root={tmp_path / 'one'}", cwd=tmp_path)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(ROOT / "recover.py"),
            *common,
            "trainer=ddp_cluster",
            "trainer.devices=2",
            f"paths.output_root={tmp_path / 'two'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("per-pixel error") == 1  # only rank 0 reports
    (dir_one,), (dir_two,) = (tmp_path / "one" / "recover").iterdir(), (tmp_path / "two" / "recover").iterdir()
    assert_two_ranks_shared_the_work(dir_two, [(m, i) for m in (20, 40) for i in range(5)])
    assert_same_estimates(dir_one, dir_two)


@pytest.mark.slow
def test_multirun_with_two_devices(vae_checkpoint, tmp_path):
    result = run_script(
        "recover.py",
        "-m",
        *TINY_RECOVER,
        f"checkpoint={vae_checkpoint}",
        "measurements=[20]",
        "num_images=3",
        "solver=csgm,csgm_reg",
        "trainer=ddp",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = sorted(p.name.split("-")[0] for p in (tmp_path / "recover").iterdir() if p.is_dir())
    assert runs == ["csgm", "csgm_reg"]
    for run_dir in (tmp_path / "recover").iterdir():
        if run_dir.is_dir():
            assert sorted(int(r["image_id"]) for r in read_rows(run_dir)) == [0, 1, 2]


@pytest.mark.slow
def test_multirun_with_the_joblib_launcher(vae_checkpoint, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = run_script(
        "recover.py",
        "-m",
        "hydra/launcher=local_parallel",
        *TINY_RECOVER,
        f"checkpoint={vae_checkpoint}",
        "measurements=[20]",
        "num_images=2",
        "operator=gaussian,fourier",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = sorted(p.name.split("-")[1] for p in (tmp_path / "recover").iterdir() if p.is_dir())
    assert runs == ["fourier", "gaussian"]


def test_summary_covers_the_request_while_results_keep_every_row(vae_checkpoint, tmp_path):
    recover(config(vae_checkpoint, tmp_path, "measurements=[20,40]"), tmp_path / "run")
    again = recover(config(vae_checkpoint, tmp_path, "measurements=[40]", "num_images=3"), tmp_path / "run")
    assert [(s["m"], s["images"]) for s in again["summary"]] == [(40, 3)]
    assert len(read_rows(tmp_path / "run")) == 2 * 6


def test_a_nonlinear_operator_with_csgm_and_its_refusal_by_lasso(vae_checkpoint, tmp_path):
    """Phase retrieval y = |A x|: CSGM recovers through autograd; Lasso, which needs A^T, refuses in one line."""
    result = recover(
        config(vae_checkpoint, tmp_path, "operator=phase_retrieval", "noise=none", "measurements=[100,1568]"),
        tmp_path / "run",
    )
    assert [(s["m"], s["failed"]) for s in result["summary"]] == [(100, 0), (1568, 0)]  # m may exceed n = 784
    assert all(math.isfinite(s["mse_mean"]) for s in result["summary"])
    cfg = compose_config(
        "recover",
        [
            "operator=phase_retrieval",
            "solver=lasso",
            "solver.lambda_l1=0.1",
            "logger=none",
            f"paths.output_root={tmp_path}",
            "measurements=[100]",
            "num_images=2",
        ],
    )
    with pytest.raises(
        CsgmError, match=r"^solver 'lasso' needs a linear operator .*operator 'phase_retrieval' is nonlinear"
    ):
        recover(cfg, tmp_path / "lasso")
    assert not (tmp_path / "lasso" / "shards").exists()
