"""Datasets: folder of images, CelebA layout, torchvision offline errors, the data module."""

from __future__ import annotations

import pytest
import torch

from csgm.data import ImageDataModule, load_splits
from csgm.errors import CsgmError
from tests.helpers import make_fake_celeba, write_images


def folder_cfg(path, **extra):
    return {
        "name": "folder",
        "data_dir": str(path),
        "image_size": 32,
        "channels": 3,
        "val_size": 0.2,
        "test_size": 0.2,
        "split_seed": 0,
        **extra,
    }


def test_folder_resizes_crops_and_converts(tmp_path):
    write_images(tmp_path / "a", 6, (50, 40), "RGB")
    write_images(tmp_path / "b" / "deeper", 4, (20, 30), "L", suffix=".jpg", seed=1)
    splits = load_splits(folder_cfg(tmp_path))
    assert sum(len(s) for s in splits.values()) == 10
    for split in splits.values():
        for i in range(len(split)):
            image, index = split[i]
            assert image.shape == (3, 32, 32) and index == i
            assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    grey = load_splits(folder_cfg(tmp_path, channels=1, image_size=[16, 24]))
    assert grey["train"][0][0].shape == (1, 16, 24)


def test_folder_split_is_deterministic(tmp_path):
    write_images(tmp_path, 20, (8, 8))
    a = load_splits(folder_cfg(tmp_path))["test"]
    b = load_splits(folder_cfg(tmp_path))["test"]
    assert a.paths == b.paths


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(CsgmError, match="no images .* found under data_dir="):
        load_splits(folder_cfg(tmp_path))


def test_folder_that_does_not_exist(tmp_path):
    with pytest.raises(CsgmError, match="is not a folder"):
        load_splits(folder_cfg(tmp_path / "missing"))


def test_folder_bad_channel_count(tmp_path):
    write_images(tmp_path, 5, (8, 8))
    with pytest.raises(CsgmError, match="channels=2"):
        load_splits(folder_cfg(tmp_path, channels=2))


def test_celeba_layout_partition_and_preprocessing(tmp_path):
    make_fake_celeba(tmp_path, per_split=(5, 2, 3))
    cfg = {"name": "celeba", "data_dir": str(tmp_path), "download": False, "crop": 108, "image_size": 64}
    splits = load_splits(cfg)
    assert {k: len(v) for k, v in splits.items()} == {"train": 5, "val": 2, "test": 3}
    image, _ = splits["test"][0]
    assert image.shape == (3, 64, 64)
    assert splits["test"].paths[0].name == "000007.jpg"  # official partition: ids 7..9 are test


def test_celeba_missing_is_a_clear_error(tmp_path):
    with pytest.raises(CsgmError, match="no CelebA under data_dir=.*set dataset.data_dir"):
        load_splits({"name": "celeba", "data_dir": str(tmp_path), "download": False, "crop": 108, "image_size": 64})


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_torchvision_dataset_missing_offline_names_the_bundled_alternative(tmp_path, name):
    cfg = {"name": name, "data_dir": str(tmp_path), "download": False, "val_size": 10, "test_size": 0, "split_seed": 0}
    with pytest.raises(CsgmError, match="use the bundled dataset=mnist10k"):
        load_splits(cfg)


def test_unknown_dataset_name():
    with pytest.raises(
        CsgmError, match="unknown dataset 'imagenet'; choose one of: celeba, fashion_mnist, folder, mnist, mnist10k"
    ):
        load_splits({"name": "imagenet"})


def test_datamodule_batches_and_shape():
    data = ImageDataModule({"name": "mnist10k", "val_size": 100, "test_size": 100, "split_seed": 0}, batch_size=32)
    assert data.image_shape == (1, 28, 28)
    images, ids = next(iter(data.test_dataloader()))
    assert images.shape == (32, 1, 28, 28) and torch.equal(ids, torch.arange(32))
