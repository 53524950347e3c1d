"""One training job: dataset -> generator module -> Lightning fit -> checkpoint, sample grid, test ELBO."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.model_helpers import is_overridden

from csgm.cli import plain
from csgm.checks import check_train_config
from csgm.data import ImageDataModule
from csgm.errors import CsgmError
from csgm.reporting.loggers import build_logger, finish_wandb, log_final_checkpoint
from csgm.trainer import build_trainer
from csgm.training import build_training_module
from csgm.training.checkpointing import AtomicCheckpointIO, TrainingInterrupted, TrainingState
from csgm.run_folders import resume_checkpoint, resume_run_dir
from csgm.training.resume import check_same_settings, read_run_record, trim_metrics
from csgm.training.samples import SampleGrid

__all__ = ["train"]


def quick_training(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` shrunk by its ``quick`` setting (``debug=quick``: at most ``epochs`` epochs of at most ``batches``
    batches per split), or ``cfg`` itself without one."""
    quick = cfg.get("quick")
    if not quick:
        return cfg
    trainer = dict(cfg["trainer"])
    epochs = trainer.get("max_epochs")
    trainer["max_epochs"] = quick["epochs"] if epochs in (None, -1) else min(epochs, quick["epochs"])
    for split in ("train", "val", "test"):
        limit = trainer.get(f"limit_{split}_batches")
        trainer[f"limit_{split}_batches"] = min(limit, quick["batches"]) if type(limit) is int else quick["batches"]
    return {**cfg, "trainer": trainer}


def train(cfg: Any, run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train the configured generator (or continue the run ``cfg['resume']`` names); returns a summary with the
    checkpoint and sample grid paths. ``overrides`` (the command line's) are kept in every checkpoint, so that
    a resumed run composes the same settings. Ctrl-C saves a checkpoint and returns a summary with ``interrupted``
    (and the command that continues the run)."""
    cfg = plain(cfg)
    check_train_config(cfg)
    cfg = quick_training(cfg)
    run_dir = Path(run_dir)
    resume_from = _resume_point(cfg, run_dir) if cfg.get("resume") else None
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    gen_cfg = cfg["generator"]

    data = ImageDataModule(cfg["dataset"], cfg["batch_size"], cfg["num_workers"])
    module = build_training_module(gen_cfg, data.image_shape, cfg["dataset"]["name"], cfg.get("range_error"))
    samples = SampleGrid(run_dir, cfg["num_samples"], cfg["seed"])
    every = cfg.get("checkpoint_every", 0)  # also keep checkpoints/epoch_EEEE.ckpt every this many epochs
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        save_top_k=-1 if every else 0,
        every_n_epochs=every or None,
        filename="epoch_{epoch:04d}",
        auto_insert_metric_name=False,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    state = TrainingState(last, {"config": {**cfg, "resume": None}, "overrides": list(overrides or [])})
    logger = build_logger(
        cfg["logger"],
        run_dir,
        run_name=f"train-{gen_cfg['name']}-{cfg['dataset']['name']}",
        run_id=resume_from and resume_from[1].get("logger_id"),
        hyperparameters=cfg,
    )
    trainer = build_trainer(
        cfg["trainer"],
        default_root_dir=str(run_dir),
        logger=logger,
        callbacks=[state, checkpoint, samples],
        plugins=[AtomicCheckpointIO()],
    )
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume_from and resume_from[0])
    except TrainingInterrupted:
        pass
    if state.interrupted:
        finish_wandb()
        return {
            "run_dir": str(run_dir),
            "checkpoint": str(last),
            "interrupted": state.interrupted,
            "continue": f"python train.py resume={run_dir}",
        }
    # Read the step from the checkpoint: with ddp_spawn the workers' counters do not come back to this process.
    saved = torch.load(last, map_location="cpu", weights_only=True)
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "checkpoint": str(last),
        "samples": str(samples.latest),
        "fit_seconds": round(time.perf_counter() - start, 1),
        "global_step": saved["global_step"],
        "world_size": saved["world_size"],
    }
    if is_overridden("test_step", module):
        # One device, so that every test image counts exactly once (a distributed sampler would pad).
        tester = build_trainer(
            {**cfg["trainer"], "devices": 1, "num_nodes": 1, "strategy": "auto"},
            logger=logger,
            default_root_dir=str(run_dir),
        )
        metrics = tester.test(module, datamodule=data, verbose=False)
        summary.update({k: float(v) for k, v in metrics[0].items()})
    log_final_checkpoint(logger, last)
    finish_wandb()
    return summary


def _resume_point(cfg: dict, run_dir: Path) -> tuple[Path, dict]:
    """The checkpoint ``cfg['resume']`` continues and its run record, after checking that the run goes on in its
    own folder with its own settings and has epochs or steps left; metrics logged after the checkpoint are dropped
    (the resumed run logs them again)."""
    resume = cfg["resume"]
    path = resume_checkpoint(resume)
    record = read_run_record(path)
    folder = Path(resume_run_dir(resume, ""))
    if folder.resolve() != run_dir.resolve():
        raise CsgmError(
            f"resume={resume}: the run goes on in {folder}, but this job writes to {run_dir}; run "
            "`python train.py resume=RUN_FOLDER` alone (not in a multirun, without hydra.run.dir)"
        )
    check_same_settings(cfg, record["config"], resume)
    epochs, steps = cfg["trainer"].get("max_epochs"), cfg["trainer"].get("max_steps", -1)
    done = record["epochs_done"], record["global_step"]
    if (epochs not in (None, -1) and done[0] >= epochs) or (steps not in (None, -1) and done[1] >= steps):
        raise CsgmError(
            f"resume={resume}: the run already trained {done[0]} epochs ({done[1]} steps), which "
            f"reaches trainer.max_epochs={epochs} / trainer.max_steps={steps}; raise them to train on"
        )
    trim_metrics(run_dir / "csv" / "metrics.csv", record["epoch"], record["step"] if record["mid_epoch"] else None)
    return path, record
