"""Training never loses work: last.ckpt after every epoch and on Ctrl-C, and a resumed run that ends with the
weights, optimizer states and metrics of an uninterrupted run, bit for bit (CPU)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import csgm.training.run as training_run
from csgm.errors import CsgmError
from csgm.run_folders import resume_run_dir
from csgm.training.checkpointing import AtomicCheckpointIO
from csgm.training.run import train
from tests.helpers import ROOT, TINY_GENERATORS, compose_config, summary_lines

TINY = [
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "num_samples=4",
    "logger=csv",
]
GENERATORS = {
    "vae": ["generator.arch.hidden_dims=[32]"],
    "dcgan": ["generator=dcgan", "generator.arch.base_channels=4", "generator.training.disc_base_channels=4"],
    "diffusion": ["generator=diffusion", *TINY_GENERATORS["diffusion"]],  # its moving average resumes too
}


def fit(run_dir: Path, overrides: list[str]) -> dict:
    return train(compose_config("train", [*TINY, *overrides]), run_dir, overrides)


class CtrlC(pl.Callback):
    """Sends this process a real SIGINT after batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def with_ctrl_c(monkeypatch, epoch: int, batch: int) -> None:
    build = training_run.build_trainer

    def build_with_ctrl_c(cfg, **extra):
        if "callbacks" in extra:  # the fitting trainer, not the tester
            extra["callbacks"] = [*extra["callbacks"], CtrlC(epoch, batch)]
        return build(cfg, **extra)

    monkeypatch.setattr(training_run, "build_trainer", build_with_ctrl_c)


def saved_state(run_dir: Path) -> tuple[dict, list]:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return checkpoint["state_dict"], checkpoint["optimizer_states"]


def assert_same_state(a: Path, b: Path) -> None:
    (weights_a, optim_a), (weights_b, optim_b) = saved_state(a), saved_state(b)
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    flat_a, flat_b = torch.utils._pytree.tree_flatten(optim_a), torch.utils._pytree.tree_flatten(optim_b)
    assert flat_a[1] == flat_b[1]
    assert all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y for x, y in zip(flat_a[0], flat_b[0]))


def metric_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_resumed_runs_end_with_the_weights_of_an_uninterrupted_run(generator, tmp_path, monkeypatch):
    """Three epochs straight == one epoch + resume to three == Ctrl-C in epoch 1 + resume (weights, optimizer
    states, metric rows; the interrupted epoch's training means cover the batches after the resume only)."""
    arch = GENERATORS[generator]
    fit(tmp_path / "straight", [*arch, "trainer.max_epochs=3"])

    fit(tmp_path / "epoch_end", [*arch, "trainer.max_epochs=1"])
    fit(tmp_path / "epoch_end", [*arch, "trainer.max_epochs=3", f"resume={tmp_path / 'epoch_end'}"])
    assert_same_state(tmp_path / "straight", tmp_path / "epoch_end")
    assert metric_rows(tmp_path / "epoch_end") == metric_rows(tmp_path / "straight")

    with_ctrl_c(monkeypatch, epoch=1, batch=0)
    stopped = fit(tmp_path / "ctrl_c", [*arch, "trainer.max_epochs=3"])
    monkeypatch.undo()
    assert stopped["interrupted"] == "in epoch 1, after batch 2 of 3"  # the batch after the signal ends first
    assert stopped["continue"] == f"python train.py resume={tmp_path / 'ctrl_c'}"
    fit(tmp_path / "ctrl_c", [*arch, "trainer.max_epochs=3", f"resume={tmp_path / 'ctrl_c'}"])
    assert_same_state(tmp_path / "straight", tmp_path / "ctrl_c")
    straight, resumed = metric_rows(tmp_path / "straight"), metric_rows(tmp_path / "ctrl_c")
    assert len(resumed) == len(straight)
    for a, b in zip(straight, resumed):
        assert a["epoch"] == b["epoch"] and a["step"] == b["step"]
        assert a == b or (a["epoch"] == "1" and any(k.startswith("train/") for k in a))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished")
    fit(run_dir, [*GENERATORS["vae"], "trainer.max_epochs=1"])
    return run_dir


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["trainer.max_epochs=1"], "the run already trained 1 epochs (3 steps), which reaches trainer.max_epochs=1"),
        (
            ["trainer.max_epochs=2", "generator.arch.latent_dim=5"],
            "generator.arch.latent_dim=5 differs from the run's generator.arch.latent_dim=20",
        ),
        (["trainer.max_epochs=2", "seed=1"], "seed=1 differs from the run's seed=0"),
        (["trainer.max_epochs=2", "batch_size=50"], "batch_size=50 differs from the run's batch_size=100"),
        (["trainer.max_epochs=2", "logger=none"], "logger.name='none' differs from the run's logger.name='csv'"),
    ],
)
def test_a_resume_that_would_change_the_run_is_refused(finished_run, tmp_path, overrides, message):
    run_dir = copy_of(finished_run, tmp_path)
    with pytest.raises(CsgmError, match=f"^resume={run_dir}: .*{message.replace('(', '.').replace(')', '.')}"):
        fit(run_dir, [*GENERATORS["vae"], *overrides, f"resume={run_dir}"])


def test_a_resume_point_that_is_missing_or_broken_is_refused(finished_run, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = [*GENERATORS["vae"], "trainer.max_epochs=2"]
    with pytest.raises(CsgmError, match="no training run there"):
        fit(tmp_path / "nowhere", [*resume, f"resume={tmp_path / 'nowhere'}"])
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CsgmError, match="checkpoints/last.ckpt does not exist .the run stopped before its first epoch"):
        fit(tmp_path / "empty", [*resume, f"resume={tmp_path / 'empty'}"])
    with pytest.raises(CsgmError, match=f"the run goes on in {run_dir}, but this job writes to {tmp_path / 'other'}"):
        fit(tmp_path / "other", [*resume, f"resume={run_dir}"])
    torch.save({"state_dict": {}}, last)
    with pytest.raises(CsgmError, match="has no 'csgm_train_run' entry"):
        fit(run_dir, [*resume, f"resume={run_dir}"])
    shutil.copy(finished_run / "checkpoints" / "last.ckpt", last)
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(CsgmError, match="is not a readable torch checkpoint"):
        fit(run_dir, [*resume, f"resume={last}"])


def test_a_checkpoint_write_that_dies_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    import csgm.files

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"weights": torch.arange(4.0)}, path)

    def die_midway(target, data, final):
        target.write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt  # what a kill leaves: half a file, no rename

    monkeypatch.setattr(csgm.files, "_write_synced", die_midway)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"weights": torch.arange(1000.0)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.arange(4.0))


@pytest.mark.slow
def test_ctrl_c_on_train_py_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """A real Ctrl-C (SIGINT) to train.py once two epochs are done: exit 130 with the command that continues;
    that command continues the same folder (the first run's .hydra kept) to the weights of a straight run."""
    overrides = [*TINY, *GENERATORS["vae"], "trainer.max_epochs=1000", "logger=csv"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *overrides, f"paths.output_root={tmp_path}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while process.poll() is None and not list(tmp_path.glob("train/*/samples/epoch_0001.png")):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate()
    assert process.returncode == 130, stderr
    summary = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in stdout.splitlines() if line.strip()}
    run_dir = Path(summary["run_dir"])
    done = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["csgm_train_run"]["epochs_done"]
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *summary["continue"].split()[2:], f"trainer.max_epochs={done + 1}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert summary_lines(resumed)["run_dir"] == str(run_dir)
    assert (run_dir / ".hydra" / "overrides.yaml").read_text().count("trainer.max_epochs=1000") == 1
    assert len(list((run_dir / ".hydra").glob("resume_*/overrides.yaml"))) == 1
    fit(tmp_path / "straight", [*GENERATORS["vae"], f"trainer.max_epochs={done + 1}"])
    assert_same_state(tmp_path / "straight", run_dir)
    assert [(r["epoch"], "val/nelbo" in r) for r in metric_rows(run_dir)] == [
        (r["epoch"], "val/nelbo" in r) for r in metric_rows(tmp_path / "straight")
    ]


def test_a_resume_that_names_no_run_fails_while_the_run_folder_is_resolved(tmp_path):
    """Before Hydra makes the folder or opens its log file there: two such commands at once cannot race on it."""
    (tmp_path / "started" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CsgmError, match="no training run there"):
        resume_run_dir(str(tmp_path / "missing"), "fresh")
    with pytest.raises(CsgmError, match="no training run there"):
        resume_run_dir(str(tmp_path / "missing" / "checkpoints" / "last.ckpt"), "fresh")
    with pytest.raises(CsgmError, match="the run stopped before its first epoch ended"):
        resume_run_dir(str(tmp_path / "started"), "fresh")
    assert not (tmp_path / "missing").exists() and resume_run_dir(None, "fresh") == "fresh"
