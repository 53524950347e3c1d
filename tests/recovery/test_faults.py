"""Faults and hostile settings: nothing finished is lost, nothing is computed twice, nothing wrong is silent.

Each fault is compared image by image (x_hat and every result column but the timing) with an
uninterrupted run of the same command.
"""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from csgm.errors import CsgmError
from csgm.recovery.run import recover
from csgm.recovery.store import ResultsStore
from tests.helpers import ROOT, TINY_RECOVER, compose_config, run_script


def read_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "results.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def estimates(run_dir: Path) -> dict:
    merged = torch.load(run_dir / "reconstructions.pt", weights_only=True)
    return {tuple(k): x for k, x in zip(merged["keys"].tolist(), merged["x_hat"])}


def assert_same_results(run_dir: Path, reference: Path) -> None:
    assert read_rows(run_dir) == read_rows(reference)
    a, b = estimates(run_dir), estimates(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def only_run(root: Path) -> Path:
    (run_dir,) = [p for p in (root / "recover").iterdir() if p.is_dir()]
    return run_dir


def config(checkpoint, root, *extra):
    return compose_config("recover", [*TINY_RECOVER, f"checkpoint={checkpoint}", f"paths.output_root={root}", *extra])


ARGS = ("measurements=[20,40]", "num_images=6", "batch_size=1", "solver.iterations=60")


@pytest.fixture(scope="module")
def reference(vae_checkpoint, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    result = run_script(
        "recover.py", *TINY_RECOVER, f"checkpoint={vae_checkpoint}", f"paths.output_root={root}", *ARGS, cwd=root
    )
    assert result.returncode == 0, result.stderr
    return only_run(root)


def finished_shards(root: Path) -> list[Path]:
    """The shards written so far (not the hidden temp files of writes in progress)."""
    return sorted(p for p in root.glob("recover/*/shards/*.pt") if not p.name.startswith("."))


@pytest.mark.slow
def test_kill_corrupt_shard_and_leftover_temp_file_then_resume(vae_checkpoint, reference, tmp_path):
    """kill -9 mid-run, then a truncated shard and an interrupted write's temp file: the resume warns
    once about the shard, never reads the temp file, recomputes exactly the lost images."""
    command = [
        sys.executable,
        str(ROOT / "recover.py"),
        *TINY_RECOVER,
        f"checkpoint={vae_checkpoint}",
        f"paths.output_root={tmp_path}",
        *ARGS,
    ]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Wait on the condition (three finished shards), bounded by the child's own exit, never by a clock: a slow start
    # on a loaded machine only makes the wait longer.
    while process.poll() is None and len(finished_shards(tmp_path)) < 3:
        time.sleep(0.01)
    assert process.poll() is None, f"the run ended (exit status {process.returncode}) before three shards were written"
    process.send_signal(signal.SIGKILL)
    process.wait()
    run_dir = only_run(tmp_path)
    shards = finished_shards(tmp_path)
    assert 3 <= len(shards) < 12, "the kill must land mid-run"
    shards[0].write_bytes(shards[0].read_bytes()[:64])  # a truncated shard
    torch.save({"rows": [{"m": 20, "image_id": 5}], "x_hat": torch.zeros(1)}, run_dir / "shards" / ".m20_id5_0.tmp1.pt")
    resumed = run_script("recover.py", *command[2:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("csgm: warning:")]
    assert len(warnings) == 1 and shards[0].name in warnings[0]
    assert (run_dir / "shards" / "unreadable" / shards[0].name).is_file()
    assert_same_results(run_dir, reference)


@pytest.mark.slow
def test_two_identical_commands_at_once_do_the_work_once(vae_checkpoint, reference, tmp_path):
    command = [
        sys.executable,
        str(ROOT / "recover.py"),
        *TINY_RECOVER,
        f"checkpoint={vae_checkpoint}",
        f"paths.output_root={tmp_path}",
        *ARGS,
    ]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    run_dir = only_run(tmp_path)
    shard_rows = [(int(r["m"]), int(r["image_id"])) for shard in ResultsStore(run_dir).shards() for r in shard["rows"]]
    assert sorted(shard_rows) == [(m, i) for m in (20, 40) for i in range(6)]  # every pair computed exactly once
    assert sum("is busy" in err for _, err in outputs) == 1
    assert_same_results(run_dir, reference)


def _swap_weights(source: str, target: Path) -> None:
    """A checkpoint at ``target`` whose generator differs from ``source``'s (every weight x 1.01: a working G, not a
    saturated one, which loading would refuse)."""
    checkpoint = torch.load(source, weights_only=True)
    state = checkpoint["csgm_generator"]["state_dict"]
    checkpoint["csgm_generator"]["state_dict"] = {k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(checkpoint, target)


def test_checkpoint_swapped_at_the_same_path_gets_its_own_folder(vae_checkpoint, tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(Path(vae_checkpoint).read_bytes())
    folder = lambda: compose_config("recover", [f"checkpoint={path}", f"paths.output_root={tmp_path}"]).run_name  # noqa: E731
    before = folder()
    recover(config(path, tmp_path, "measurements=[20]", "num_images=2"), tmp_path / before)
    _swap_weights(vae_checkpoint, path)
    after = folder()
    assert after != before
    with pytest.raises(CsgmError, match=r"holds results of another setting \(differs in: generator\)"):
        recover(config(path, tmp_path, "measurements=[20]", "num_images=3"), tmp_path / before)
    path.write_bytes(Path(vae_checkpoint).read_bytes())  # the same generator again, in a new file
    assert folder() == before
    copy = tmp_path / "elsewhere" / "copy.ckpt"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert compose_config("recover", [f"checkpoint={copy}", f"paths.output_root={tmp_path}"]).run_name == before


@pytest.mark.parametrize(
    "change",
    [
        "noise.std=0.2",
        "noise=student_t",
        "operator=fourier",
        "operator.normalize=true",
        "seed=1",
        "trainer.precision=bf16-mixed",
        "matmul_precision=high",
        "solver.lambda_z=0.1",
        "input=val",
    ],
)
def test_every_setting_that_changes_results_changes_the_folder(vae_checkpoint, change):
    folder = lambda *extra: compose_config("recover", [f"checkpoint={vae_checkpoint}", *extra]).run_name  # noqa: E731
    assert folder(change) != folder()


def test_speed_and_size_options_keep_the_folder(vae_checkpoint):
    folder = lambda *extra: compose_config("recover", [f"checkpoint={vae_checkpoint}", *extra]).run_name  # noqa: E731
    same = {
        folder(),
        folder("solver.compile=true"),
        folder("solver.flush_denormals=false"),
        folder("batch_size=7"),
        folder("num_images=3"),
        folder("measurements=[5]"),
        folder("trainer.precision=32"),
        folder("tuning.num_images=3"),
    }
    assert len(same) == 1
    assert folder("solver=lasso") != folder("solver=lasso", "tuning.num_images=3")  # tuning matters where it chooses
    # the search's pruning of restarts matters only for solvers with restarts
    assert folder("solver=lasso") == folder("solver=lasso", "tuning.halving_every=0")
    assert folder("solver=sparse_gen") != folder("solver=sparse_gen", "tuning.halving_every=0")


def test_a_huge_learning_rate_is_reported_as_divergence(vae_checkpoint, tmp_path):
    result = recover(
        config(vae_checkpoint, tmp_path, "solver.lr=1e30", "measurements=[20]", "num_images=3"), tmp_path / "run"
    )
    with open(tmp_path / "run" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["status"], r["reason"]) for r in rows] == [("diverged", "all_restarts_diverged")] * 3
    assert all(r["dropped_restarts"] == "2" and r["mse"] == "" and r["measurement_loss"] == "" for r in rows)
    (entry,) = result["summary"]
    assert entry["failed"] == 3 and math.isnan(entry["mse_mean"])


def test_failed_images_are_counted_and_never_averaged(vae_checkpoint, tmp_path, monkeypatch):
    """Two of four images diverge (their y made non-finite): the mean is over the other two, the table says 2 failed."""
    from csgm.operators.noise import Noise
    from csgm.reporting.table import format_summary

    clean = recover(
        config(vae_checkpoint, tmp_path, "noise=none", "measurements=[20]", "num_images=4"), tmp_path / "clean"
    )
    forward = Noise.forward
    monkeypatch.setattr(
        Noise,
        "forward",
        lambda self, y, ids, key: (
            forward(self, y, ids, key)
            + torch.tensor([[math.inf] if i in (1, 3) else [0.0] for i in ids], dtype=y.dtype)
        ),
    )
    result = recover(
        config(vae_checkpoint, tmp_path, "noise=none", "measurements=[20]", "num_images=4"), tmp_path / "hostile"
    )
    (entry,) = result["summary"]
    with open(tmp_path / "clean" / "results.csv", newline="") as handle:
        clean_mse = [float(r["mse"]) for r in csv.DictReader(handle)]
    assert entry["failed"] == 2 and entry["images"] == 4
    assert entry["mse_mean"] == pytest.approx((clean_mse[0] + clean_mse[2]) / 2)
    line = format_summary(result["summary"]).splitlines()[-1].split()
    assert line[4:6] == ["4", "2"]
    assert clean["summary"][0]["failed"] == 0


def test_no_grid_when_save_images_is_zero(vae_checkpoint, tmp_path):
    recover(config(vae_checkpoint, tmp_path, "measurements=[20]", "num_images=2"), tmp_path / "run")
    assert (tmp_path / "run" / "grid.png").is_file()
    result = recover(
        config(vae_checkpoint, tmp_path, "measurements=[20]", "num_images=2", "save_images=0"), tmp_path / "run"
    )
    assert "recovery_grid" not in result["paths"] and not (tmp_path / "run" / "grid.png").exists()
    assert (tmp_path / "run" / "results.csv").is_file()


def test_student_t_runs_do_not_resume_folders_of_the_squared_loss():
    """Student-t noise now has its likelihood as the data term: its folders are new, Gaussian ones unchanged."""
    from csgm.recovery.identity import run_identity

    base = {
        "dataset": {"name": "mnist10k"},
        "input": "test",
        "operator": {"name": "gaussian"},
        "seed": 0,
        "solver": {"name": "csgm"},
        "trainer": {},
    }
    gaussian = run_identity({**base, "noise": {"name": "gaussian", "std": 0.1}}, "digest")
    student = run_identity({**base, "noise": {"name": "student_t", "std": 0.1, "df": 3.0}}, "digest")
    assert "data_term" not in gaussian and student["data_term"] == "likelihood"
