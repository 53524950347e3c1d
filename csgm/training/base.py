"""Shared parts of the generator training modules: the generator spec and checkpoint payload."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from csgm.errors import check_range
from csgm.generators import build_generator
from csgm.generators.checkpoint import CHECKPOINT_KEY, generator_payload
from csgm.training.range_error import RangeError

__all__ = ["GeneratorModule"]


class GeneratorModule(pl.LightningModule):
    """A LightningModule that owns a generator ``self.generator`` and stores it in every checkpoint.

    Every ``range_error_every`` epochs (0: never) it logs ``val/range_error``, min_z ||G(z) - x||^2 / n on the
    first ``range_error_images`` validation images of each process (``range_error_steps`` Adam steps, one
    restart): how well G can represent held-out images, the floor of its CS error. Cheap by default.
    """

    def __init__(self, name: str, arch: dict, image_shape: tuple[int, int, int], dataset: str, range_error_every: int = 10,
                 range_error_images: int = 16, range_error_steps: int = 50) -> None:
        super().__init__()
        for key, value in (("range_error_every", range_error_every), ("range_error_images", range_error_images),
                           ("range_error_steps", range_error_steps)):
            check_range(f"generator.training.{key}", value, 0 if key == "range_error_every" else 1)
        self.generator_name = name
        self.arch = dict(arch)
        self.dataset_name = dataset
        self.generator = build_generator(name, self.arch, image_shape)
        self.range_error_every, self.range_error_images = int(range_error_every), int(range_error_images)
        self.range_error = RangeError(iterations=int(range_error_steps))

    def validation_step(self, batch, batch_idx):
        """The range error on the first images of the first validation batch, every ``range_error_every`` epochs."""
        if batch_idx or not self.range_error_every or (self.current_epoch + 1) % self.range_error_every:
            return
        x = batch[0][:self.range_error_images]
        self.range_error.update(self.generator, x, list(range(len(x))))
        self.log("val/range_error", self.range_error, on_step=False, on_epoch=True, batch_size=len(x))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = generator_payload(self.generator, self.generator_name, self.arch, self.dataset_name)
        checkpoint["world_size"] = self.trainer.world_size  # the processes that trained it
