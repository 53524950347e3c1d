"""Deterministic train/val/test splits by a seed."""

from __future__ import annotations

import torch

from csgm.errors import CsgmError
from csgm.seeding import seeded_rng

__all__ = ["split_indices", "SPLITS"]

SPLITS = ("train", "val", "test")


def _count(size: float | int, total: int, name: str) -> int:
    """A split size given as a count (int) or a fraction of ``total`` (float in [0, 1))."""
    if isinstance(size, float):
        if not 0.0 <= size < 1.0:
            raise CsgmError(f"{name}={size} is not a valid fraction; use a float in [0, 1) or an integer count")
        return int(round(size * total))
    if size < 0:
        raise CsgmError(f"{name}={size} must be >= 0")
    return int(size)


def split_indices(total: int, val_size: float | int, test_size: float | int, seed: int) -> dict[str, torch.Tensor]:
    """Split ``range(total)`` into disjoint train/val/test index tensors by a seeded permutation.

    The test part is taken first, then val, then train, so changing ``val_size`` never moves a
    test image into training.
    """
    n_test = _count(test_size, total, "test_size")
    n_val = _count(val_size, total, "val_size")
    if n_test + n_val >= total:
        raise CsgmError(f"val_size + test_size = {n_val + n_test} leaves no training images out of {total}")
    perm = torch.randperm(total, generator=seeded_rng("split", seed))
    return {
        "test": perm[:n_test].sort().values,
        "val": perm[n_test : n_test + n_val].sort().values,
        "train": perm[n_test + n_val :].sort().values,
    }
