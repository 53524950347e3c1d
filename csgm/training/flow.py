"""Maximum-likelihood training of a normalising flow on uniformly dequantised pixels."""

from __future__ import annotations

import torch

from csgm.errors import check_range
from csgm.generators.flow import bits_per_dim
from csgm.training.base import GeneratorModule

__all__ = ["FlowModule"]


class FlowModule(GeneratorModule):
    """Minimises the bits per dimension of the training images; logs ``{split}/bpd``."""

    method, generators = "mle", ("flow",)

    def __init__(
        self,
        name: str,
        arch: dict,
        image_shape: tuple[int, int, int],
        dataset: str = "",
        range_error: dict | None = None,
        lr: float = 1e-3,
    ) -> None:
        check_range("generator.training.lr", lr, 0, low_open=True)
        super().__init__(name, arch, image_shape, dataset, range_error)
        self.save_hyperparameters()

    def _step(self, batch, split: str) -> torch.Tensor:
        x = batch[0]
        loss = bits_per_dim(self.generator, x, torch.rand_like(x)).mean()
        self.log(
            f"{split}/bpd",
            loss,
            prog_bar=split != "test",
            on_epoch=True,
            on_step=False,
            batch_size=len(x),
            sync_dist=split != "train",
        )
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")
        super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
