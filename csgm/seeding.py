"""Stable seeds derived from the run seed and ids, so no draw depends on batch, rank or device."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "seeded_rng"]


def derive_seed(*keys: object) -> int:
    """Map any tuple of ints/strings to a 63-bit seed that is the same in every process."""
    digest = hashlib.sha256(repr(tuple(keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seeded_rng(*keys: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``keys`` (draw on CPU, then move, for device-independence)."""
    return torch.Generator().manual_seed(derive_seed(*keys))
