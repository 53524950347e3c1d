"""One LightningDataModule for every dataset."""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from csgm.data.datasets import load_splits
from csgm.data.samplers import ResumableRandomSampler

__all__ = ["ImageDataModule"]


class ImageDataModule(pl.LightningDataModule):
    """Train/val/test loaders over the dataset config; ``image_shape`` is known after ``setup``."""

    def __init__(self, dataset: dict, batch_size: int = 100, num_workers: int = 0) -> None:
        super().__init__()
        self.dataset_cfg = dict(dataset)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.splits: dict[str, Dataset] | None = None
        self._train_sampler: ResumableRandomSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = load_splits(self.dataset_cfg)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images."""
        self.setup()
        return tuple(self.splits["train"][0][0].shape)

    @property
    def train_sampler(self) -> ResumableRandomSampler:
        """The shuffling order of the training split (one per module, so that a resumed run can set it up)."""
        if self._train_sampler is None:
            self.setup()
            self._train_sampler = ResumableRandomSampler(self.splits["train"])
        return self._train_sampler

    def _loader(self, split: str, sampler: ResumableRandomSampler | None = None) -> DataLoader:
        self.setup()
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
