"""A prediction writer: every rank stores its own results per batch (recover() merges them on rank 0)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from csgm.recovery.store import ResultsStore

__all__ = ["ShardWriter"]


class ShardWriter(BasePredictionWriter):
    """Writes each (rows, x_hat, posterior) result of ``predict_step`` as an atomic shard, so an interrupted run keeps
    every finished batch; after the last batch all ranks meet, so that rank 0 merges complete results."""

    def __init__(self, store: ResultsStore) -> None:
        super().__init__(write_interval="batch")
        self.store = store

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        for rows, x_hat, posterior in prediction:
            self.store.write_shard(rows, x_hat, trainer.global_rank, posterior)

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.strategy.barrier("csgm-merge")
