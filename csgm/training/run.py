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
from csgm.reporting.loggers import build_logger, finish_wandb
from csgm.trainer import build_trainer
from csgm.training import training_module, training_options
from csgm.training.samples import SampleGrid

__all__ = ["train"]


def train(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Train the configured generator; returns a summary with the checkpoint and sample grid paths."""
    cfg = plain(cfg)
    check_train_config(cfg)
    run_dir = Path(run_dir)
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    gen_cfg = cfg["generator"]

    data = ImageDataModule(cfg["dataset"], cfg["batch_size"], cfg["num_workers"])
    module = training_module(gen_cfg)(gen_cfg["name"], gen_cfg["arch"], data.image_shape, cfg["dataset"]["name"],
                                      cfg.get("range_error"), **training_options(gen_cfg))
    samples = SampleGrid(run_dir, cfg["num_samples"], cfg["seed"])
    every = cfg.get("checkpoint_every", 0)  # also keep checkpoints/epoch_EEEE.ckpt every this many epochs
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=-1 if every else 0,
                                 every_n_epochs=every or None, filename="epoch_{epoch:04d}", auto_insert_metric_name=False)
    logger = build_logger(cfg["logger"], run_dir, run_name=f"train-{gen_cfg['name']}-{cfg['dataset']['name']}")
    trainer = build_trainer(cfg["trainer"], default_root_dir=str(run_dir), logger=logger,
                            callbacks=[checkpoint, samples])
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    last = run_dir / "checkpoints" / "last.ckpt"
    # Read the step from the checkpoint: with ddp_spawn the workers' counters do not come back to this process.
    saved = torch.load(last, map_location="cpu", weights_only=True)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": str(last), "samples": str(samples.latest),
                               "fit_seconds": round(time.perf_counter() - start, 1), "global_step": saved["global_step"],
                               "world_size": saved["world_size"]}
    if is_overridden("test_step", module):
        # One device, so that every test image counts exactly once (a distributed sampler would pad).
        tester = build_trainer({**cfg["trainer"], "devices": 1, "num_nodes": 1, "strategy": "auto"}, logger=logger,
                               default_root_dir=str(run_dir))
        metrics = tester.test(module, datamodule=data, verbose=False)
        summary.update({k: float(v) for k, v in metrics[0].items()})
    finish_wandb()
    return summary
