"""Datasets (mnist10k bundled, mnist, fashion_mnist, celeba, folder) and the data module."""

from csgm.data.datamodule import ImageDataModule
from csgm.data.datasets import DATASET, DATASETS, load_splits
from csgm.data.splits import split_indices

__all__ = ["DATASET", "DATASETS", "ImageDataModule", "load_splits", "split_indices"]
