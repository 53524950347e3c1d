"""Shared parts of the generator training modules: the generator spec, val/range_error and the checkpoint payload."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from csgm.errors import CsgmError, check_range
from csgm.generators import Generator, build_generator
from csgm.generators.checkpoint import CHECKPOINT_KEY, generator_payload
from csgm.training.range_error import RangeError

__all__ = ["GeneratorModule", "RANGE_ERROR_DEFAULTS"]

RANGE_ERROR_DEFAULTS = {"every": 10, "images": 16, "steps": 50}


class GeneratorModule(pl.LightningModule):
    """A LightningModule that owns a generator ``self.generator`` and stores it in every checkpoint.

    Every ``range_error['every']`` epochs (0: never) it logs ``val/range_error``, min_z ||G(z) - x||^2 / n on the
    first ``range_error['images']`` validation images of each process (``range_error['steps']`` Adam steps, one
    restart): how well G can represent held-out images, the floor of its CS error. Cheap by default.
    Subclasses set ``method`` (the ``generator.training.method`` they implement) and ``generators`` (the
    generator names they can train, None for all). A user's subclass plugs in by ``generator.training._target_``;
    the training run supplies the arguments of this constructor, its own options come from ``generator.training``.
    """

    method: str = ""
    generators: tuple[str, ...] | None = None

    def __init__(
        self, name: str, arch: dict, image_shape: tuple[int, int, int], dataset: str, range_error: dict | None = None
    ) -> None:
        self.check_generator(name)
        super().__init__()
        options = {**RANGE_ERROR_DEFAULTS, **(range_error or {})}
        for key, value in options.items():
            check_range(f"range_error.{key}", value, 0 if key == "every" else 1)
        self.generator_name = name
        self.arch = dict(arch)
        self.dataset_name = dataset
        self.generator = build_generator(name, self.arch, image_shape)
        self.range_error_every, self.range_error_images = int(options["every"]), int(options["images"])
        self.range_error = RangeError(iterations=int(options["steps"]))

    @classmethod
    def check_generator(cls, name: str) -> None:
        """Refuse, in one line, a generator this method cannot train."""
        if cls.generators is not None and name not in cls.generators:
            raise CsgmError(
                f"generator.training.method={cls.method} cannot train generator={name} (it trains "
                f"{', '.join(cls.generators)}); pick another generator/training"
            )

    def trained_generator(self) -> Generator:
        """The generator as recovery will use it (latents ~ N(0, I)); the training copy itself by default."""
        return self.generator

    def validation_step(self, batch, batch_idx):
        """The range error on the first images of the first validation batch, every ``range_error_every`` epochs."""
        if batch_idx or not self.range_error_every or (self.current_epoch + 1) % self.range_error_every:
            return
        x, image_ids = batch[0][: self.range_error_images], batch[1][: self.range_error_images].tolist()
        self.range_error.update(self.trained_generator(), x, image_ids)  # starts seeded by dataset index
        self.log("val/range_error", self.range_error, on_step=False, on_epoch=True, batch_size=len(x))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = generator_payload(
            self.trained_generator(), self.generator_name, self.arch, self.dataset_name, self.method
        )
        checkpoint["world_size"] = self.trainer.world_size  # the processes that trained it
