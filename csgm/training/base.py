"""Shared parts of the generator training modules: the generator spec and checkpoint payload."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from csgm.generators import build_generator
from csgm.generators.checkpoint import CHECKPOINT_KEY, generator_payload

__all__ = ["GeneratorModule"]


class GeneratorModule(pl.LightningModule):
    """A LightningModule that owns a generator ``self.generator`` and stores it in every checkpoint."""

    def __init__(self, name: str, arch: dict, image_shape: tuple[int, int, int], dataset: str) -> None:
        super().__init__()
        self.generator_name = name
        self.arch = dict(arch)
        self.dataset_name = dataset
        self.generator = build_generator(name, self.arch, image_shape)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = generator_payload(self.generator, self.generator_name, self.arch, self.dataset_name)
        checkpoint["world_size"] = self.trainer.world_size  # the processes that trained it
