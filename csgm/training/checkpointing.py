"""What makes a training run resumable to the same bits: atomic checkpoint files, the random state and the data order
saved with every checkpoint, and a Ctrl-C that saves before it stops.

A checkpoint written at the end of an epoch holds the global RNG states as they are when the next epoch starts;
a checkpoint written by Ctrl-C (single process) also holds the epoch's shuffling seed and the batches already
trained, so the resumed run replays the rest of that epoch. Either way a resumed run ends with the weights of
an uninterrupted one (tests/training/test_resume.py). Under several processes the data order is the
DistributedSampler's (seed, epoch) and only the end-of-epoch checkpoints are resume points.
"""

from __future__ import annotations

import io
import random
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.loggers import WandbLogger

from csgm.files import atomic_write_bytes

__all__ = ["RUN_KEY", "AtomicCheckpointIO", "TrainingInterrupted", "TrainingState"]

RUN_KEY = "csgm_train_run"  # in every training checkpoint: settings, progress, random state (see TrainingState)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a synced temporary file beside it, then renames it into place: a kill -9 during
    the write leaves the previous file whole (Lightning's own fsspec transaction copies across file systems)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once the checkpoint is saved; the training run reports it and exits."""


def _rng_states() -> dict[str, Any]:
    """Every global RNG a training step may draw from, as tensors and lists (readable with weights_only)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate((3, tuple(states["python"]), None))
    keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class TrainingState(pl.Callback):
    """Writes ``last_path`` after every epoch; saves the run record (settings, progress, RNG states, the epoch's data
    order) with every checkpoint and puts the state back on resume. In a single process (main thread), the
    first Ctrl-C, or a SIGTERM, saves ``last_path`` at the end of the running batch and stops the run (a second
    Ctrl-C stops at once, keeping the last epoch's checkpoint)."""

    def __init__(self, last_path: str | Path, run: dict[str, Any]) -> None:
        self.last_path = Path(last_path)
        self.run = run  # what every checkpoint records about the run: {"config": ..., "overrides": [...]}
        self.interrupted: str | None = None  # where the run stopped, once Ctrl-C has stopped it
        self._requested = False
        self._previous_handler: Any = None
        self._restore: dict[str, Any] | None = None
        self._mid_epoch_save = False

    # -- Ctrl-C ---------------------------------------------------------------------------------------------
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._requested:  # the second Ctrl-C: Lightning's own KeyboardInterrupt shutdown
            raise KeyboardInterrupt
        self._requested = True
        print(
            "\ncsgm: interrupt: saving a checkpoint at the end of this batch (Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _save(self, trainer: pl.Trainer, mid_epoch: bool) -> None:
        self._mid_epoch_save = mid_epoch
        trainer.save_checkpoint(self.last_path, weights_only=False)
        self._mid_epoch_save = False

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        """Ctrl-C, or (one process) a SIGTERM such as a cluster's preemption, which Lightning only notes."""
        return self._requested or (trainer.world_size == 1 and bool(getattr(trainer, "received_sigterm", False)))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._stop_requested(trainer) or batch_idx + 1 >= trainer.num_training_batches:
            return  # the last batch of an epoch: the epoch's own checkpoint follows (on_train_epoch_end)
        self._save(trainer, mid_epoch=True)
        self.interrupted = (
            f"in epoch {trainer.current_epoch}, after batch {batch_idx + 1} of {trainer.num_training_batches}"
        )
        raise TrainingInterrupted(self.interrupted)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """last.ckpt after every epoch (after its validation, so the RNG states are those the next epoch starts from)."""
        last_epoch = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
        if self._stop_requested(trainer) and not last_epoch and not trainer.global_step >= trainer.max_steps > 0:
            trainer.should_stop = True  # (after the last epoch the run ends anyway, and goes on to its test)
            self.interrupted = f"at the end of epoch {trainer.current_epoch}"
        self._save(trainer, mid_epoch=False)

    # -- state in the checkpoint ----------------------------------------------------------------------------
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """The run record: settings and overrides, the logger's run id, where in the run this is, the RNG states
        and (mid-epoch) the epoch's shuffling seed and the samples already trained on."""
        logger = trainer.logger
        record: dict[str, Any] = {
            **self.run,
            "logger_id": logger.version if isinstance(logger, WandbLogger) else None,
            "mid_epoch": self._mid_epoch_save,
            "epoch": trainer.current_epoch,
            "epochs_done": trainer.current_epoch + (0 if self._mid_epoch_save else 1),
            "global_step": trainer.global_step,
            "step": trainer.fit_loop.epoch_loop._batches_that_stepped,
            "rng": _rng_states(),
        }
        sampler = getattr(trainer.datamodule, "train_sampler", None)
        if self._mid_epoch_save and sampler is not None:
            batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            record.update(epoch_seed=sampler.epoch_seed, samples_done=batches * trainer.datamodule.batch_size)
        checkpoint[RUN_KEY] = record

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Put the run's state back: at an epoch's end, the RNG states now (before the fit loop makes the next
        epoch's loader, which draws its seeds); mid-epoch, the epoch's order now and the RNG states just before
        the next batch's step (after the loader has drawn)."""
        record = checkpoint.get(RUN_KEY)
        if not record:
            return
        if record["mid_epoch"]:
            trainer.datamodule.train_sampler.resume_at(record["epoch_seed"], record["samples_done"])
            self._restore = record["rng"]
            # Lightning cannot see that the sampler resumes the epoch, and would warn that the loader does not
            warnings.filterwarnings("ignore", message=r".*checkpoint that ended before the epoch ended.*")
        else:
            _set_rng_states(record["rng"])

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._restore is not None:
            _set_rng_states(self._restore)
            self._restore = None
