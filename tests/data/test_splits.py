"""Splits are deterministic by seed, disjoint and cover every image; the test part never moves."""

from __future__ import annotations

import pytest
import torch

from csgm.data import load_splits, split_indices
from csgm.errors import CsgmError


def test_split_is_deterministic_disjoint_and_complete():
    a = split_indices(1000, 100, 150, seed=3)
    b = split_indices(1000, 100, 150, seed=3)
    for name in a:
        assert torch.equal(a[name], b[name])
    assert [len(a[k]) for k in ("train", "val", "test")] == [750, 100, 150]
    union = torch.cat(list(a.values()))
    assert len(set(union.tolist())) == 1000


def test_different_seed_gives_different_split():
    assert not torch.equal(split_indices(1000, 100, 100, 0)["test"], split_indices(1000, 100, 100, 1)["test"])


def test_test_split_does_not_depend_on_val_size():
    assert torch.equal(split_indices(500, 10, 50, 0)["test"], split_indices(500, 90, 50, 0)["test"])


def test_fractions_are_accepted():
    parts = split_indices(200, 0.1, 0.25, 0)
    assert (len(parts["val"]), len(parts["test"])) == (20, 50)


@pytest.mark.parametrize(
    "val,test,match", [(0.5, 0.6, "no training images"), (1.5, 0, "not a valid fraction"), (-1, 0, ">= 0")]
)
def test_bad_split_sizes(val, test, match):
    with pytest.raises(CsgmError, match=match):
        split_indices(100, val, test, 0)


def test_bundled_mnist10k_splits():
    splits = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})
    assert {k: len(v) for k, v in splits.items()} == {"train": 8000, "val": 1000, "test": 1000}
    image, index = splits["test"][7]
    assert image.shape == (1, 28, 28) and index == 7
    assert image.dtype == torch.float32 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert int(splits["test"].images.max()) == 255  # real uint8 digits, full white reached
    train = splits["train"].images.flatten(1)
    test = splits["test"].images.flatten(1)
    # No test digit appears in training (the bundled set has no exact duplicates across splits).
    train_keys = {bytes(row.numpy()) for row in train}
    assert not any(bytes(row.numpy()) in train_keys for row in test)
